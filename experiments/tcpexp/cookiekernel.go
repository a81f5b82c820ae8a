package tcpexp

// cookieKernel returns the kernel's state beside each segment of one
// connection to a listener that may answer SYNs with SYN cookies, in
// capture order. cookie says whether a SYN-ACK's sequence number is a
// cookie, as the experiment measured it for that SYN-ACK (SyncookiesSent
// rose by one and sock_diag found no socket for the connection).
//
// inferKernel cannot serve here: it puts a kernel that answered a SYN in
// SYN-RECEIVED, and a listener that answers with a cookie keeps no socket
// at all. Until a final ACK carries a valid cookie, the only socket the
// connection's segments touch is the listener; the views say so.
func cookieKernel(segs []wseg, cookie func(isn uint32) bool) []kview {
	out := make([]kview, len(segs))
	st := kListen
	var isn uint32
	var haveISN, cookied bool
	nextSynAck := func(i int) (wseg, bool) {
		for _, s := range segs[i+1:] {
			if !s.fromLab && s.has(wSYN) && s.has(wACK) {
				return s, true
			}
		}
		return wseg{}, false
	}
	const noSocket = "the listener's: no socket for this connection"
	for i, s := range segs {
		switch {
		case s.fromLab && s.has(wSYN) && !s.has(wACK):
			if st == kEstablished {
				out[i] = kview{st, "a SYN on an established connection"}
				continue
			}
			switch sa, ok := nextSynAck(i); {
			case !ok:
				out[i] = kview{st, "no SYN-ACK answers this SYN in the capture"}
			case cookie(sa.seq):
				st = kListen
				out[i] = kview{st, noSocket + "; it answers with a SYN cookie and keeps no request socket"}
			default:
				st = kSynReceived
				out[i] = kview{st, "a request socket: the listener's SYN queue had room"}
			}
		case !s.fromLab && s.has(wSYN) && s.has(wACK):
			again := haveISN && s.seq == isn
			isn, haveISN = s.seq, true
			cookied = cookie(s.seq)
			switch {
			case cookied:
				out[i] = kview{kListen, noSocket + "; the SYN-ACK's ISN is the SYN cookie, nothing else is kept"}
			case again:
				out[i] = kview{kSynReceived, "retransmitted by the request socket: the kernel remembers this SYN"}
			default:
				st = kSynReceived
				out[i] = kview{st, "sent by the request socket"}
			}
		case s.fromLab && s.has(wRST):
			out[i] = kview{st, ""}
		case !s.fromLab && s.has(wRST):
			out[i] = kview{kListen, noSocket + "; its RST answers an ACK that matches no socket and no cookie"}
		case s.fromLab && s.has(wACK) && st != kEstablished:
			switch {
			case haveISN && s.ack == isn+1 && cookied:
				st = kEstablished
				out[i] = kview{st, "ACK−1 is a cookie the listener made: the kernel builds the connection's socket only now"}
			case haveISN && s.ack == isn+1:
				st = kEstablished
				out[i] = kview{st, "the request socket becomes the connection"}
			case cookied:
				out[i] = kview{kListen, noSocket + "; ACK−1 is no cookie the listener made (SyncookiesFailed): refused"}
			default:
				out[i] = kview{st, "the ACK acknowledges nothing the kernel sent"}
			}
		default:
			out[i] = kview{st, ""}
		}
	}
	return out
}
