package quicexp

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/statelab/statelab/lab/capture"
)

// What the server exchanged with each forged address: the copies it got,
// its probes, anything else it sent, and the 3× limit.
func TestTallyForged(t *testing.T) {
	fake1, fake2 := tForged, netip.MustParseAddrPort("127.0.0.4:50004")
	probe := func(b byte) func(*Datagram) { return srvLogged(challenge(b)) }
	data := srvLogged(PacketEvent{Sent: true, Frames: []string{"STREAM", "ACK"}})
	for _, tc := range []struct {
		name              string
		ds                []*Datagram
		probed, others    int
		ampOK             bool
		copies, commented int
	}{
		{"each forged address probed, nothing else", capturedIn(
			dgram(fake1, tServer, "c", size(1200)), dgram(tServer, fake1, "x", size(1200), probe(1)),
			dgram(fake2, tServer, "c", size(1200)), dgram(tServer, fake2, "x", size(1200), probe(2)),
			dgram(tNAT, tServer, "c", size(1200)),
		), 2, 0, true, 2, 4},
		{"data sent to a forged address", capturedIn(
			dgram(fake1, tServer, "c", size(1200)), dgram(tServer, fake1, "x", size(1200), probe(1)), dgram(tServer, fake1, "x", size(100), data),
			dgram(fake2, tServer, "c", size(1200)), dgram(tServer, fake2, "x", size(1200), probe(2)),
		), 2, 1, true, 2, 4},
		{"more than 3× what the forged address sent", capturedIn(
			dgram(fake1, tServer, "c", size(100)), dgram(tServer, fake1, "x", size(1200), probe(1)),
			dgram(fake2, tServer, "c", size(1200)), dgram(tServer, fake2, "x", size(1200), probe(2)),
		), 2, 0, false, 2, 4},
		{"one forged address never probed", capturedIn(
			dgram(fake1, tServer, "c", size(1200)), dgram(tServer, fake1, "x", size(1200), probe(1)),
			dgram(fake2, tServer, "c", size(1200)),
		), 1, 0, true, 2, 3},
		{"a PATH_RESPONSE from a forged address", capturedIn(
			dgram(fake1, tServer, "c", srvLogged(PacketEvent{Response: [][8]byte{{1}}})), dgram(tServer, fake1, "x", probe(1)),
			dgram(fake2, tServer, "c"), dgram(tServer, fake2, "x", probe(2)),
		), 2, 1, true, 2, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := tallyForged(tc.ds, []netip.AddrPort{fake1, fake2})
			probed, ampOK, others, _ := a.probedAll()
			if probed != tc.probed || others != tc.others || ampOK != tc.ampOK || len(a.copies) != tc.copies {
				t.Errorf("probed %d, others %d, within 3× %t, %d copies; want %d, %d, %t, %d", probed, others, ampOK, len(a.copies), tc.probed, tc.others, tc.ampOK, tc.copies)
			}
			for _, d := range tc.ds {
				d.Pkt = &capture.Packet{}
			}
			a.comment()
			commented := 0
			for _, d := range tc.ds {
				commented += len(d.Pkt.Comments)
			}
			if commented != tc.commented {
				t.Errorf("%d comments, want %d (each copy and each probe)", commented, tc.commented)
			}
		})
	}
}

// The originals of the attacker's copies carry the server's verdict; those
// it dropped as duplicates are counted.
func TestCommentOriginals(t *testing.T) {
	o1 := dgram(tNAT, tServer, "c", srvLogged(PacketEvent{Dropped: "duplicate"}))
	o2 := dgram(tNAT, tServer, "c", srvLogged(PacketEvent{}))
	ds := capturedIn(
		dgram(tForged, tServer, "c", func(d *Datagram) { d.CopyOf = o1 }), o1,
		dgram(tForged, tServer, "c", func(d *Datagram) { d.CopyOf = o2 }), o2,
		dgram(tForged, tServer, "c"), // no original captured
	)
	for _, d := range ds {
		d.Pkt = &capture.Packet{}
	}
	a := tallyForged(ds, []netip.AddrPort{tForged})
	if n := a.commentOriginals(); n != 1 {
		t.Errorf("%d dropped as duplicates, want 1", n)
	}
	for _, c := range []struct {
		d    *Datagram
		want string
	}{{o1, "frame 1, arriving after it; the server's verdict: dropped (duplicate)"}, {o2, "frame 3, arriving after it; the server's verdict: processed"}} {
		if len(c.d.Pkt.Comments) != 1 || !strings.Contains(c.d.Pkt.Comments[0], c.want) {
			t.Errorf("comments %q, want one with %q", c.d.Pkt.Comments, c.want)
		}
	}
}

func TestOnlyProbing(t *testing.T) {
	for _, tc := range []struct {
		frames []string
		ok     bool
	}{
		{[]string{"PATH_CHALLENGE"}, true},
		{[]string{"PATH_CHALLENGE", "NEW_CONNECTION_ID", "Padding"}, true},
		{[]string{"PATH_RESPONSE", "ACK"}, false},
		{[]string{"STREAM"}, false},
		{nil, true},
	} {
		if got := onlyProbing(tc.frames); got != tc.ok {
			t.Errorf("%v: %t, want %t", tc.frames, got, tc.ok)
		}
	}
}
