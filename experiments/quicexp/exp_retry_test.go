package quicexp

import (
	"crypto/aes"
	"crypto/cipher"
	"slices"
	"strings"
	"testing"

	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/lab/labtest"
	"github.com/statelab/statelab/quicconn"
)

// retryPacket is a Retry answering an Initial to odcid, with its
// integrity tag (RFC 9001 §5.8), or a broken tag when bad.
func retryPacket(t *testing.T, odcid, scid, dcid, token []byte, bad bool) []byte {
	t.Helper()
	b := []byte{0xf0, 0, 0, 0, 1, byte(len(dcid))}
	b = append(append(b, dcid...), byte(len(scid)))
	b = append(append(b, scid...), token...)
	pseudo := append(append([]byte{byte(len(odcid))}, odcid...), b...)
	block, _ := aes.NewCipher([]byte{0xbe, 0x0c, 0x69, 0x0b, 0x9f, 0x66, 0x57, 0x5a, 0x1d, 0x76, 0x6b, 0x54, 0xe3, 0x68, 0xc8, 0x4e})
	aead, _ := cipher.NewGCM(block)
	tag := aead.Seal(nil, []byte{0x46, 0x15, 0x99, 0xd3, 0x5d, 0x63, 0x2b, 0xf2, 0x23, 0x98, 0x25, 0xbb}, nil, pseudo)
	if bad {
		tag[0] ^= 1
	}
	return append(b, tag...)
}

func clientInitialWith(t *testing.T, dcid, token []byte) []byte {
	t.Helper()
	b, err := quicconn.BuildInitial(quicconn.InitialSpec{DCID: dcid, SCID: []byte("clientid"), Token: token})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// viewConn finds the Initial whose token made the server create the
// connection: the first echoing a Retry's token after a Retry, the first
// with a token when no Retry came; never one whose token no verified
// Retry gave.
func TestViewConnFindsTheAcceptedToken(t *testing.T) {
	odcid, rscid := []byte("origdcid"), []byte("retrycid")
	tokA, tokB, tokN, tokX := []byte("token-a"), []byte("token-b"), []byte("new-token"), []byte("unknown")
	in := func(tok []byte) *capture.Packet { return udpPacket(tClient, tServer, clientInitialWith(t, odcid, tok)) }
	echo := func(tok []byte) *capture.Packet { return udpPacket(tClient, tServer, clientInitialWith(t, rscid, tok)) }
	retry := func(tok []byte, bad bool) *capture.Packet {
		return udpPacket(tServer, tClient, retryPacket(t, odcid, rscid, []byte("clientid"), tok, bad))
	}
	for _, tc := range []struct {
		name                  string
		pkts                  []*capture.Packet
		accepted, used, first int
		retries               int
	}{
		{"a Retry per Initial of the first flight, the first echoed",
			[]*capture.Packet{in(nil), in(nil), retry(tokA, false), echo(tokA), retry(tokB, false), echo(tokA)}, 3, 0, 2, 2},
		{"a NEW_TOKEN token, no Retry", []*capture.Packet{in(tokN), in(tokN)}, 0, -1, 2, 0},
		{"an expired NEW_TOKEN token, a Retry, its token echoed", []*capture.Packet{in(tokN), retry(tokA, false), echo(tokA)}, 2, 0, 1, 1},
		{"a token no Retry gave", []*capture.Packet{in(nil), retry(tokA, false), echo(tokX)}, -1, -1, 1, 1},
		{"a Retry whose integrity tag fails", []*capture.Packet{in(nil), retry(tokA, true), echo(tokA)}, -1, -1, 1, 1},
		{"no token at all", []*capture.Packet{in(nil)}, -1, -1, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := Datagrams(tc.pkts, tServer, 8)
			v := viewConn(ds, tServer, tClient)
			if v.accepted != tc.accepted || v.used != tc.used || v.firstFlight() != tc.first || len(v.retries) != tc.retries {
				t.Errorf("accepted %d, used %d, first flight %d, %d Retry; want %d, %d, %d, %d",
					v.accepted, v.used, v.firstFlight(), len(v.retries), tc.accepted, tc.used, tc.first, tc.retries)
			}
			if tc.used >= 0 && string(v.usedToken()) != string(v.tokenOf()) {
				t.Errorf("echoed token %q, Retry token %q", v.tokenOf(), v.usedToken())
			}
		})
	}
}

// What the prober says the server answered.
func TestProbeAnswer(t *testing.T) {
	closeFrame := func(code uint64) *quicconn.OpenedInitial {
		return &quicconn.OpenedInitial{Frames: []quicconn.Frame{{Type: 0x1c, ErrorCode: code}, {Type: 0}}}
	}
	for _, tc := range []struct {
		name    string
		p       probe
		want    string
		invalid bool
	}{
		{"Retry", probe{retry: &quicconn.Retry{Token: make([]byte, 58)}}, "a new Retry (token 58 B)", false},
		{"INVALID_TOKEN", probe{opened: closeFrame(quicconn.ErrCodeInvalidToken)}, "an Initial [CONNECTION_CLOSE INVALID_TOKEN]", true},
		{"another close", probe{opened: closeFrame(quicconn.ErrCodeConnectionRefused)}, "an Initial [CONNECTION_CLOSE 0x2]", false},
		{"an ACK", probe{opened: &quicconn.OpenedInitial{Frames: []quicconn.Frame{{Type: 2}}}}, "an Initial [ACK]", false},
		{"nothing readable", probe{reply: make([]byte, 30)}, "an unreadable 30-byte datagram", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.p.answer(); got != tc.want || tc.p.invalidToken() != tc.invalid {
				t.Errorf("answer %q, invalid token %t; want %q, %t", got, tc.p.invalidToken(), tc.want, tc.invalid)
			}
		})
	}
}

// quic/retry's capture, decrypted by tshark with the embedded secrets
// alone, shows the Retry (long header type 3) to each client that had no
// valid token, and a NEW_TOKEN frame in every connection whose completion
// (HANDSHAKE_DONE, which quic-go sends in the same packet) it decrypts.
//
// It does not require every packet to decrypt: quic-go's first flight is
// two Initials (a post-quantum key share makes the ClientHello longer than
// one packet) and the server answers each with a Retry; when the second
// Retry arrives after the client has already echoed the first, Wireshark
// 4.0 loses that connection's connection IDs: it still decrypts the 1-RTT
// packets coalesced behind a long header, but no packet that stands alone
// — the one with HANDSHAKE_DONE and NEW_TOKEN among them — though the
// endpoints decrypt them all (their qlogs say so): a dissector
// limitation, not the capture's. (Seen in captures/quic/retry.pcapng,
// connection 3, frames 39 and 41; under load more connections draw two
// Retries.)
func TestTsharkShowsRetryAndNewToken(t *testing.T) {
	labtest.NeedTool(t, "tshark")
	r := labtest.RunExperiment(t, experiment("quic/retry"), 5)
	path := r.Captures[0]
	out := labtest.Tshark(t, path, "-T", "fields", "-E", "separator=|", "-E", "occurrence=f",
		"-e", "udp.srcport", "-e", "udp.dstport", "-e", "quic.long.packet_type", "-e", "quic.token_length", "-e", "quic.frame_type")
	retries := map[string]int{} // by client port
	server := ""
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) < 5 {
			continue
		}
		if f[2] == "3" {
			retries[f[1]]++
			server = f[0]
		}
	}
	if len(retries) != 3 {
		t.Errorf("Retry packets to %d client ports %v; want 3 (the prober's first socket, connections 1 and 3)", len(retries), retries)
	}
	// The server's 1-RTT frames tshark decrypted, by client port: each
	// connection whose HANDSHAKE_DONE it could read carries a NEW_TOKEN.
	// (A busy machine makes the client resend its first Initials, each
	// drawing a Retry; then Wireshark reads only that connection's
	// coalesced 1-RTT packets, the limitation above.)
	decrypted, tokens := map[string]bool{}, map[string]bool{}
	if server != "" {
		lines := labtest.Tshark(t, path, "-Y", "udp.srcport == "+server+" && quic.header_form == 0 && quic.frame_type", "-T", "fields", "-e", "udp.dstport", "-e", "quic.frame_type")
		for _, line := range strings.Split(strings.TrimSpace(lines), "\n") {
			port, types, ok := strings.Cut(line, "\t")
			if !ok {
				continue
			}
			frames := strings.Split(types, ",")
			if slices.Contains(frames, "30") { // HANDSHAKE_DONE
				decrypted[port] = true
			}
			if slices.Contains(frames, "7") {
				tokens[port] = true
			}
		}
	}
	var missing []string
	for port := range decrypted {
		if !tokens[port] {
			missing = append(missing, port)
		}
	}
	if len(tokens) == 0 || len(missing) > 0 {
		t.Errorf("NEW_TOKEN frames to client ports %v; decrypted HANDSHAKE_DONE to %v; ports without a NEW_TOKEN: %v", tokens, decrypted, missing)
	}
	if r.Metrics["retry_token_bytes"] <= 0 || r.Metrics["new_token_bytes"] <= 0 || r.Metrics["connections_created_before_token_count"] != 0 {
		t.Errorf("metrics %v", r.Metrics)
	}
	if bare := labtest.TsharkCount(t, path, "!frame.comment"); bare != 0 {
		t.Errorf("%d packets without a comment", bare)
	}
}

// quic/retry passes with every check, and its Holding row is written
// from the run: the token sizes measured in the capture.
func TestRetryExperiment(t *testing.T) {
	r := labtest.RunExperiment(t, experiment("quic/retry"), 2)
	h := r.Holding
	if h == nil || h.CarriedBytes <= 0 || !strings.Contains(h.ServerKeeps, "0 connections created, +0 goroutines") ||
		!strings.Contains(h.ClientCarries, "-byte Retry token") {
		t.Errorf("holding %+v", h)
	}
	if r.Metrics["retry_token_carried_bytes"] != float64(h.CarriedBytes) {
		t.Errorf("carried %v bytes by the metric, %d by the holding row", r.Metrics["retry_token_carried_bytes"], h.CarriedBytes)
	}
}
