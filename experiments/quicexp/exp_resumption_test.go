package quicexp

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/statelab/statelab/lab/labtest"
	"github.com/statelab/statelab/quicconn"
)

var (
	rServer = netip.MustParseAddrPort("127.0.0.1:4433")
	rClient = netip.MustParseAddrPort("127.0.0.1:50001")
)

// rPart is a packet of a synthetic datagram: its type, bytes and the
// frames its sender logged (nil: no record).
func rPart(typ string, n int, detail ...string) Part {
	p := Part{Header: quicconn.Header{Type: typ, Len: n}}
	if detail != nil {
		e := &PacketEvent{Type: typ, Detail: detail}
		for _, d := range detail {
			e.Frames = append(e.Frames, strings.Fields(d)[0])
		}
		p.Sent = e
	}
	return p
}

func rDgram(toServer bool, parts ...Part) *Datagram {
	d := &Datagram{Src: rClient, Dst: rServer, Parts: parts}
	if !toServer {
		d.Src, d.Dst = rServer, rClient
	}
	for _, p := range parts {
		d.Size += p.Len
	}
	return d
}

// numbered numbers the datagrams in capture order and gives the client's
// records the same order: its packets sent, and its receipt of the
// server's.
func numbered(ds ...*Datagram) []*Datagram {
	t0 := time.Unix(0, 0)
	for i, d := range ds {
		d.Index, d.Time = i, t0.Add(time.Duration(i)*time.Millisecond)
		for k := range d.Parts {
			if d.Src == rClient && d.Parts[k].Sent != nil {
				d.Parts[k].Sent.Seq = 10 * i
			}
			if d.Src == rServer {
				d.Parts[k].Recv = &PacketEvent{Seq: 10 * i}
			}
		}
	}
	return ds
}

// receivedLate moves the client's receipt of d after everything else.
func receivedLate(d *Datagram) *Datagram {
	for k := range d.Parts {
		d.Parts[k].Recv.Seq += 1000
	}
	return d
}

// measure reads handshake bytes, the request's packet and the round
// trips before it, the answer and HANDSHAKE_DONE from a connection's
// datagrams.
func TestConnFactsMeasure(t *testing.T) {
	for _, tc := range []struct {
		name                  string
		ds                    []*Datagram
		hs, tls, zero         int
		dataType              string
		flights, data, answer int // indexes, -1: none
		done, ticket          int
	}{
		{"a full handshake: the request after one server flight", numbered(
			rDgram(true, rPart("initial", 1200, "CRYPTO off 0 len 300")),
			rDgram(false, rPart("initial", 1200, "ACK 0", "CRYPTO off 0 len 90")),
			rDgram(false, rPart("handshake", 900, "CRYPTO off 0 len 850")),
			rDgram(true, rPart("handshake", 80, "CRYPTO off 0 len 36"), rPart("1RTT", 60, "STREAM 0 off 0 len 11 FIN")),
			rDgram(false, rPart("1RTT", 300, "HANDSHAKE_DONE", "CRYPTO off 0 len 190")),
			rDgram(false, rPart("1RTT", 40, "STREAM 0 off 0 len 6 FIN")),
		), 3380, 1276, 0, "1RTT", 1, 3, 5, 4, 190},
		{"a resumption: the request in 0-RTT, before any server packet", numbered(
			rDgram(true, rPart("initial", 1200, "CRYPTO off 0 len 500")),
			rDgram(true, rPart("0RTT", 70, "STREAM 0 off 0 len 11 FIN")),
			rDgram(false, rPart("initial", 1200, "CRYPTO off 0 len 90"), rPart("handshake", 100, "CRYPTO off 0 len 60")),
			rDgram(false, rPart("1RTT", 40, "STREAM 0 off 0 len 6 FIN")),
			rDgram(true, rPart("handshake", 80, "CRYPTO off 0 len 36")),
			rDgram(false, rPart("1RTT", 30, "HANDSHAKE_DONE")),
		), 2580, 686, 70, "0RTT", 0, 1, 3, 5, 0},
		{"interleaved server flights count apart", numbered(
			rDgram(true, rPart("initial", 1200, "CRYPTO off 0 len 300")),
			rDgram(false, rPart("initial", 1200, "CRYPTO off 0 len 90")),
			rDgram(true, rPart("initial", 50, "ACK 0")),
			rDgram(false, rPart("handshake", 900, "CRYPTO off 0 len 850")),
			rDgram(false, rPart("handshake", 900, "CRYPTO off 850 len 850")),
			rDgram(true, rPart("1RTT", 60, "STREAM 0 off 0 len 11 FIN")),
		), 4250, 2090, 0, "1RTT", 2, 5, -1, -1, 0},
		{"a server flight captured before the 0-RTT request but received after it was not waited for", func() []*Datagram {
			ds := numbered(
				rDgram(true, rPart("initial", 1200, "CRYPTO off 0 len 500")),
				rDgram(false, rPart("initial", 1200, "CRYPTO off 0 len 90")),
				rDgram(true, rPart("0RTT", 70, "STREAM 0 off 0 len 11 FIN")),
			)
			receivedLate(ds[1])
			return ds
		}(), 2400, 590, 70, "0RTT", 0, 2, -1, -1, 0},
		{"a retransmitted flight counts its packets twice, its TLS bytes once", numbered(
			rDgram(true, rPart("initial", 1200, "CRYPTO off 0 len 300")),
			rDgram(false, rPart("initial", 1200, "CRYPTO off 0 len 90")),
			rDgram(false, rPart("initial", 1200, "CRYPTO off 0 len 90")),
			rDgram(true, rPart("1RTT", 60, "STREAM 0 off 0 len 11 FIN")),
		), 3600, 390, 0, "1RTT", 1, 3, -1, -1, 0},
		{"packets without a qlog record count their bytes, not their frames", numbered(
			rDgram(true, rPart("initial", 1200)),
			rDgram(false, rPart("initial", 1200)),
		), 2400, 0, 0, "", 0, -1, -1, -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &connFacts{ds: tc.ds, peer: rClient}
			f.measure(rServer)
			at := func(d *Datagram) int {
				if d == nil {
					return -1
				}
				return d.Index
			}
			if f.hsBytes() != tc.hs || f.tlsBytes() != tc.tls || f.zeroRTT != tc.zero || f.dataType != tc.dataType || f.flights != tc.flights ||
				at(f.firstData) != tc.data || at(f.answer) != tc.answer || at(f.done) != tc.done || f.ticketCrypto != tc.ticket {
				t.Errorf("got hs %d tls %d 0-RTT %d, request in %q after %d flights at %d, answer %d, done %d, ticket %d; want %d %d %d, %q %d %d, %d, %d, %d",
					f.hsBytes(), f.tlsBytes(), f.zeroRTT, f.dataType, f.flights, at(f.firstData), at(f.answer), at(f.done), f.ticketCrypto,
					tc.hs, tc.tls, tc.zero, tc.dataType, tc.flights, tc.data, tc.answer, tc.done, tc.ticket)
			}
		})
	}
}

func TestCryptoBytes(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want int
	}{
		{[]string{"CRYPTO off 0 len 233"}, 233},
		{[]string{"ACK 0", "CRYPTO off 69 len 1151", "CRYPTO off 0 len 64"}, 1215},
		{[]string{"STREAM 0 off 0 len 11", "NEW_TOKEN 90 B"}, 0},
		{nil, 0},
	} {
		if got := cryptoBytes(tc.in); got != tc.want {
			t.Errorf("cryptoBytes(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// A replayed datagram is linked to the original with the same bytes and
// takes its sender's record; a datagram with other bytes is not.
func TestMarkReplays(t *testing.T) {
	attacker := netip.MustParseAddrPort("127.0.0.1:50009")
	sent := &PacketEvent{Type: "0RTT", PN: 3}
	orig := &Datagram{Src: rClient, Dst: rServer, Parts: []Part{{Header: quicconn.Header{Type: "0RTT"}, Sent: sent}}, payload: []byte{1, 2, 3}}
	copyOf := &Datagram{Src: attacker, Dst: rServer, Parts: []Part{{Header: quicconn.Header{Type: "0RTT"}}}, payload: []byte{1, 2, 3}}
	other := &Datagram{Src: attacker, Dst: rServer, Parts: []Part{{Header: quicconn.Header{Type: "0RTT"}}}, payload: []byte{1, 2, 4}}
	markReplays([]*Datagram{copyOf, other}, []*Datagram{orig})
	if copyOf.CopyOf != orig || copyOf.Parts[0].Sent != sent {
		t.Errorf("the copy is not linked to its original: %+v", copyOf)
	}
	if other.CopyOf != nil || other.Parts[0].Sent != nil {
		t.Errorf("a datagram with other bytes was linked: %+v", other)
	}
}

func TestServerFlights(t *testing.T) {
	c := func() *Datagram { return rDgram(true, rPart("1RTT", 40, "ACK 0")) }
	s := func() *Datagram { return rDgram(false, rPart("1RTT", 40, "ACK 0")) }
	for _, tc := range []struct {
		name string
		ds   []*Datagram
		want int
	}{
		{"none", numbered(c(), c()), 0},
		{"one run", numbered(c(), s(), s()), 1},
		{"two runs", numbered(c(), s(), c(), s(), s(), c()), 2},
		{"starting with the server", numbered(s(), c(), s()), 2},
		{"a run the client had not yet received", func() []*Datagram {
			ds := numbered(c(), s(), c(), s())
			receivedLate(ds[3])
			return ds
		}(), 1},
	} {
		if got := serverFlights(tc.ds, rServer, &PacketEvent{Seq: 500}); got != tc.want {
			t.Errorf("%s: %d flights, want %d", tc.name, got, tc.want)
		}
	}
}

// The experiment passes; Wireshark decrypts it with the embedded key log
// alone (0-RTT included, from the derived early secrets): the resumed
// connection's requests are STREAM frames in 0-RTT packets, a Certificate
// crosses only in the full handshakes, the only packets left encrypted
// are the server's answers to the attacker, and every packet carries a
// comment.
func TestResumptionExperiment(t *testing.T) {
	r := labtest.RunExperiment(t, experiment("quic/resumption"), 1)
	if r.Metrics["first_request_after_flights_count"] < 1 ||
		r.Metrics["ticket_bytes"] <= 0 || r.Metrics["replayed_requests_processed_count"] != 1 {
		t.Errorf("metrics %v", r.Metrics)
	}
	if r.Holding == nil || r.Holding.CarriedBytes != int(r.Metrics["ticket_bytes"]) {
		t.Errorf("holding row %+v", r.Holding)
	}
	if labtest.LookTool(t, "tshark") == "" {
		return
	}
	path := r.Captures[0]
	if all, bare := labtest.TsharkCount(t, path, "frame"), labtest.TsharkCount(t, path, "!frame.comment"); all == 0 || bare != 0 {
		t.Errorf("%d of %d packets carry no comment", bare, all)
	}
	out := labtest.Tshark(t, path, "-Y", "quic", "-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,",
		"-e", "frame.number", "-e", "quic.long.packet_type", "-e", "quic.frame_type", "-e", "tls.handshake.type", "-e", "quic.decryption_failed", "-e", "frame.comment")
	certs := map[string]int{}
	zeroRTTStreams := 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) < 6 {
			continue
		}
		step := ""
		for s := range resumeSteps {
			if strings.Contains(f[5], s.String()+" (client ") {
				step = s.String()
			}
		}
		if f[4] != "" && step != stepReplay.String() {
			t.Errorf("frame %s of the %s does not decrypt", f[0], step)
		}
		for _, h := range split(f[3]) {
			if h == "11" {
				certs[step]++
			}
		}
		types, frames := split(f[1]), split(f[2])
		if step == stepResumed.String() && len(types) > 0 && types[len(types)-1] == "1" {
			for _, ft := range frames {
				if n, err := strconv.Atoi(ft); err == nil && n >= 8 && n <= 15 {
					zeroRTTStreams++
				}
			}
		}
	}
	if certs[stepFirst.String()] != 1 || certs[stepKeyLost.String()] != 1 || certs[stepResumed.String()] != 0 || certs[stepKeyKept.String()] != 0 {
		t.Errorf("Certificate messages per connection: %v; want one in each full handshake, none in a resumption", certs)
	}
	if zeroRTTStreams < 2 {
		t.Errorf("%d STREAM frames in the resumed connection's 0-RTT packets, want its 2 requests", zeroRTTStreams)
	}
}
