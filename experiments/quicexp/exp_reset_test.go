package quicexp

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/lab/labtest"
)

// The server process's arguments: what args writes parse reads back;
// anything else is refused with errResetServer.
func TestParseResetServer(t *testing.T) {
	for _, fifo := range []string{"", "/tmp/standby.fifo"} {
		spec := resetServerSpec{addr: "127.0.0.1:4433", key: bytes.Repeat([]byte{1}, 32), seed: bytes.Repeat([]byte{2}, 32), tally: "/tmp/t", standby: fifo}
		got, err := parseResetServer(spec.args())
		if err != nil || got.addr != spec.addr || !bytes.Equal(got.key, spec.key) || !bytes.Equal(got.seed, spec.seed) || got.tally != spec.tally || got.standby != fifo {
			t.Fatalf("round trip: %+v, %v", got, err)
		}
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"a short key", []string{"-key", "0102", "-seed", strings.Repeat("00", 32), "-tally", "x"}},
		{"a key not in hex", []string{"-key", strings.Repeat("zz", 32), "-seed", strings.Repeat("00", 32), "-tally", "x"}},
		{"no seed", []string{"-key", strings.Repeat("00", 32), "-tally", "x"}},
		{"no tally", []string{"-key", strings.Repeat("00", 32), "-seed", strings.Repeat("00", 32)}},
		{"an extra argument", []string{"-key", strings.Repeat("00", 32), "-seed", strings.Repeat("00", 32), "-tally", "x", "more"}},
		{"an unknown flag", []string{"-port", "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parseResetServer(tc.args); !errors.Is(err, errResetServer) {
				t.Errorf("error %v, want errResetServer", err)
			}
		})
	}
}

func FuzzParseResetServer(f *testing.F) {
	f.Add("-key " + strings.Repeat("00", 32) + " -seed " + strings.Repeat("11", 32) + " -tally x")
	f.Add("-addr 127.0.0.1:0 -key 00")
	f.Add("-- -key")
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := parseResetServer(strings.Fields(s))
		if err == nil && (len(spec.key) != 32 || len(spec.seed) != 32 || spec.tally == "") {
			t.Fatalf("accepted %+v", spec)
		}
		if err != nil && !errors.Is(err, errResetServer) {
			t.Fatalf("error %v is not errResetServer", err)
		}
	})
}

// readReset tells a stateless reset the client recognises (the token of
// the key it got its connection ID under) from one keyed by the restarted
// process's own key and from anything else, each checked against the
// DCID of the client packet it answers; datagrams before the kill are
// not candidates.
func TestReadResetClassifiesTokens(t *testing.T) {
	key1, key2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	dcid := "0102030405060708"
	kill := time.Unix(1000, 0)
	at := func(p *capture.Packet, sec int64) *capture.Packet { p.Time = time.Unix(sec, 0); return p }
	reset := func(key []byte, cid string) []byte {
		tok := resetToken(key, mustHex(cid))
		b := append([]byte{0x4a}, bytes.Repeat([]byte{0x55}, 25)...)
		return append(b, tok[:]...)
	}
	client := func(sec int64) *capture.Packet { return at(udpPacket(tClient, tServer, shortPacket(dcid, 60, 1)), sec) }
	server := func(b []byte, sec int64) *capture.Packet { return at(udpPacket(tServer, tClient, b), sec) }
	for _, tc := range []struct {
		name                           string
		pkts                           []*capture.Packet
		held, foreign, before, clients int
	}{
		{"the held token", []*capture.Packet{server(reset(key1, dcid), 999), client(1001), server(reset(key1, dcid), 1001)}, 1, 0, 1, 1},
		{"the restarted process's own token, answered each time", []*capture.Packet{client(1001), server(reset(key2, dcid), 1001), client(1002), server(reset(key2, dcid), 1002)}, 0, 2, 0, 2},
		{"a token for another connection ID", []*capture.Packet{client(1001), server(reset(key1, "1111111111111111"), 1001)}, 0, 0, 0, 1},
		{"a server datagram before any client one", []*capture.Packet{server(reset(key1, dcid), 1001)}, 0, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := readReset(Datagrams(tc.pkts, tServer, 8), tServer, kill, kill, [2][]byte{key1, key2})
			if v.count(resetHeld) != tc.held || v.count(resetForeign) != tc.foreign || len(v.before) != tc.before || v.clientAfter != tc.clients {
				t.Errorf("held %d, foreign %d, before %d, client datagrams after %d; want %d, %d, %d, %d",
					v.count(resetHeld), v.count(resetForeign), len(v.before), v.clientAfter, tc.held, tc.foreign, tc.before, tc.clients)
			}
		})
	}
}

// quic/stateless-reset passes; the run with the shared key ends far
// sooner than the idle timeout that ends the other; Wireshark, decrypting
// with the embedded secrets alone, recognises exactly the resets whose
// token the client holds, and every packet carries a comment.
func TestStatelessResetExperiment(t *testing.T) {
	r := labtest.RunExperiment(t, experiment("quic/stateless-reset"), 3)
	same, fresh := r.Metrics["same_key_end_ms"], r.Metrics["fresh_key_end_ms"]
	if same <= 0 || fresh < 0.9*float64(resetIdleTimeout.Milliseconds()) || 2*same >= fresh {
		t.Errorf("ended after %v ms with the same key, %v ms with a fresh key", same, fresh)
	}
	if h := r.Holding; h == nil || h.CarriedBytes != 16 || !strings.Contains(h.RestartLoses, "every connection") {
		t.Errorf("holding %+v", h)
	}
	if labtest.LookTool(t, "tshark") == "" {
		return
	}
	path := r.Captures[0]
	if n := labtest.TsharkCount(t, path, "quic.decryption_failed || _ws.malformed"); n != 0 {
		t.Errorf("%d frames tshark could not decrypt or parse", n)
	}
	if n := labtest.TsharkCount(t, path, "quic.stateless_reset_token"); n != int(r.Metrics["same_key_resets_count"]) || n == 0 {
		t.Errorf("tshark recognises %d stateless resets, the experiment %v", n, r.Metrics["same_key_resets_count"])
	}
	if bare := labtest.TsharkCount(t, path, "!frame.comment"); bare != 0 {
		t.Errorf("%d packets without a comment", bare)
	}
}

// Without the sender's qlog, the client's packet_received records join
// the server's captured packets in order, each to the next one with the
// same type, destination connection ID and length; a packet the client
// did not log (a stateless reset it dropped) takes none.
func TestJoinReceivedInOrder(t *testing.T) {
	dcid := "0102030405060708"
	p1, reset, p2 := shortPacket(dcid, 100, 1), shortPacket(dcid, 42, 2), shortPacket(dcid, 100, 3)
	ds := Datagrams([]*capture.Packet{udpPacket(tServer, tClient, p1), udpPacket(tServer, tClient, reset), udpPacket(tServer, tClient, p2)}, tServer, 8)
	events := []PacketEvent{
		{Sent: true, Type: "1RTT", DCID: "aaaaaaaaaaaaaaaa", Length: 100, PN: 9},
		{Type: "1RTT", DCID: dcid, Length: 100, PN: 1},
		{Type: "1RTT", DCID: dcid, Length: 100, PN: 2},
	}
	joinReceivedInOrder(ds, events, func(d *Datagram) bool { return d.Src == tServer })
	var got []int64
	for _, d := range ds {
		if r := d.Parts[0].Recv; r != nil {
			got = append(got, r.PN)
		} else {
			got = append(got, -1)
		}
	}
	if len(got) != 3 || got[0] != 1 || got[1] != -1 || got[2] != 2 {
		t.Errorf("received packet numbers per datagram %v, want [1 -1 2]", got)
	}
}
