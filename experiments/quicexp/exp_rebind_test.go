package quicexp

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/statelab/statelab/quicconn/nat"
)

// The anti-amplification check can fail: a synthetic exchange where the
// server sends more than 3× what it received from the new 4-tuple before
// validation is caught, and one within the limit passes.
func TestAntiAmplificationCheckCanFail(t *testing.T) {
	srv := netip.MustParseAddrPort("127.0.0.1:4433")
	peer := netip.MustParseAddrPort("127.0.0.1:50002")
	other := netip.MustParseAddrPort("127.0.0.1:50001")
	in := func(n int) *Datagram { return &Datagram{Src: peer, Dst: srv, Size: n} }
	out := func(n int) *Datagram { return &Datagram{Src: srv, Dst: peer, Size: n} }
	elsewhere := &Datagram{Src: srv, Dst: other, Size: 100000} // the old path does not count
	for _, tc := range []struct {
		name       string
		ds         []*Datagram
		sent, recv int
		ok         bool
	}{
		{"within 3×", []*Datagram{in(1200), out(1200), out(1200), elsewhere, out(1200), in(50), out(150)}, 3750, 1250, true},
		{"exactly 3×", []*Datagram{in(100), out(300)}, 300, 100, true},
		{"over 3× at one moment, even if it catches up later", []*Datagram{in(100), out(301), in(5000)}, 301, 5100, false},
		{"sending before receiving anything", []*Datagram{out(40), in(1200)}, 40, 1200, false},
		{"a burst of full packets to a 1-packet peer", []*Datagram{in(1200), out(1252), out(1252), out(1252)}, 3756, 1200, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sent, recv, _, ok := antiAmplification(tc.ds, peer)
			if sent != tc.sent || recv != tc.recv || ok != tc.ok {
				t.Errorf("got sent %d recv %d ok %t, want %d %d %t", sent, recv, ok, tc.sent, tc.recv, tc.ok)
			}
		})
	}
}

// The datagrams a rebinding turns on are found in capture order: the
// client's last 1-RTT datagram from the old binding, the first from the
// new one, the server's first to it and the PATH_RESPONSE echoing its
// challenge.
func TestFindRebindPackets(t *testing.T) {
	rb := nat.Rebinding{Old: tNAT, New: tNew}
	const cid = "c1"
	for _, tc := range []struct {
		name string
		ds   []*Datagram
		// want: indexes of lastOld, firstNew, probe, response (-1: none)
		want            [4]int
		okProbe, echoed bool
	}{
		{"a validated rebinding", capturedIn(
			dgram(tNAT, tServer, cid, long("initial", "aa")),
			dgram(tNAT, tServer, cid),
			dgram(tNew, tServer, cid),
			dgram(tServer, tNew, "s1", srvLogged(challenge(7))),
			dgram(tNew, tServer, cid, srvLogged(PacketEvent{Response: [][8]byte{{7}}}), cliLogged(response(7))),
		), [4]int{1, 2, 3, 4}, true, true},
		{"the first datagram to the new binding carries no challenge", capturedIn(
			dgram(tNAT, tServer, cid),
			dgram(tNew, tServer, cid),
			dgram(tServer, tNew, "s1", srvLogged(PacketEvent{Sent: true, Frames: []string{"ACK"}})),
			dgram(tServer, tNew, "s1", srvLogged(challenge(7))),
		), [4]int{0, 1, 2, -1}, false, false},
		{"a response the client's qlog does not show echoing", capturedIn(
			dgram(tNAT, tServer, cid),
			dgram(tNew, tServer, cid),
			dgram(tServer, tNew, "s1", srvLogged(challenge(7))),
			dgram(tNew, tServer, cid, srvLogged(PacketEvent{Response: [][8]byte{{7}}})),
		), [4]int{0, 1, 2, 3}, true, false},
		{"a response to another challenge is not the answer", capturedIn(
			dgram(tNAT, tServer, cid),
			dgram(tNew, tServer, cid),
			dgram(tServer, tNew, "s1", srvLogged(challenge(7))),
			dgram(tNew, tServer, cid, srvLogged(PacketEvent{Response: [][8]byte{{8}}}), cliLogged(response(8))),
		), [4]int{0, 1, 2, -1}, true, false},
		{"nothing from the new binding", capturedIn(
			dgram(tNAT, tServer, cid),
			dgram(tServer, tNAT, "s1"),
		), [4]int{0, -1, -1, -1}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := findRebindPackets(tc.ds, rb)
			got := [4]int{index(p.lastOld), index(p.firstNew), index(p.probe), index(p.response)}
			if got != tc.want || p.okProbe != tc.okProbe || p.clientEcho != tc.echoed {
				t.Errorf("lastOld, firstNew, probe, response at %v, challenge found %t, echoed %t; want %v, %t, %t",
					got, p.okProbe, p.clientEcho, tc.want, tc.okProbe, tc.echoed)
			}
		})
	}
}

func index(d *Datagram) int {
	if d == nil {
		return -1
	}
	return d.Index
}

// The server's move to the new binding: its switch by its tuple events,
// nothing to the old binding after it, and a fresh connection ID of the
// client's in what it builds for the new path — a packet built for the
// old path and written to the new one aside.
func TestFindServerMove(t *testing.T) {
	rb := nat.Rebinding{Old: tNAT, New: tNew}
	toNew := TupleEvent{Remote: tNew, Seq: 10}
	sent := func(seq int, remote netip.AddrPort) PacketEvent {
		return PacketEvent{Sent: true, Seq: seq, Remote: remote}
	}
	for _, tc := range []struct {
		name       string
		ds         []*Datagram
		tuples     []TupleEvent
		switched   bool
		toOldAfter int
		fresh      bool
		firstNewAt int
	}{
		{"a clean switch to a fresh connection ID", capturedIn(
			dgram(tServer, tNAT, "old", srvLogged(sent(1, tNAT))),
			dgram(tNew, tServer, "c1"),
			dgram(tServer, tNew, "new", srvLogged(sent(11, tNew))),
		), []TupleEvent{toNew}, true, 0, true, 2},
		{"a packet to the old binding after the switch", capturedIn(
			dgram(tServer, tNAT, "old", srvLogged(sent(1, tNAT))),
			dgram(tNew, tServer, "c1"),
			dgram(tServer, tNew, "new", srvLogged(sent(11, tNew))),
			dgram(tServer, tNAT, "old", srvLogged(sent(12, tNAT))),
		), []TupleEvent{toNew}, true, 1, true, 2},
		{"the old connection ID built for the new path", capturedIn(
			dgram(tServer, tNAT, "old", srvLogged(sent(1, tNAT))),
			dgram(tNew, tServer, "c1"),
			dgram(tServer, tNew, "old", srvLogged(sent(11, tNew))),
		), []TupleEvent{toNew}, true, 0, false, -1},
		{"built for the old path, written after the switch: not held against the new path", capturedIn(
			dgram(tServer, tNAT, "old", srvLogged(sent(1, tNAT))),
			dgram(tNew, tServer, "c1"),
			dgram(tServer, tNew, "old", srvLogged(sent(9, tNAT))),
			dgram(tServer, tNew, "new", srvLogged(sent(11, tNew))),
		), []TupleEvent{toNew}, true, 0, true, 3},
		{"no switch", capturedIn(
			dgram(tServer, tNAT, "old", srvLogged(sent(1, tNAT))),
			dgram(tNew, tServer, "c1"),
		), nil, false, 0, false, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := findServerMove(tc.ds, tServer, tc.tuples, rb, tc.ds[1])
			if (m.switched != nil) != tc.switched || m.toOldAfter != tc.toOldAfter || m.fresh != tc.fresh || index(m.firstNewCID) != tc.firstNewAt {
				t.Errorf("switched %t, %d to the old binding after, fresh %t, first fresh at %d; want %t, %d, %t, %d",
					m.switched != nil, m.toOldAfter, m.fresh, index(m.firstNewCID), tc.switched, tc.toOldAfter, tc.fresh, tc.firstNewAt)
			}
		})
	}
}

// What the NAT dropped at the forgotten binding: the server's datagrams
// to it after the client's last one from it, that the client never logged.
func TestDroppedAtOld(t *testing.T) {
	rb := nat.Rebinding{Old: tNAT, New: tNew}
	got := PacketEvent{}
	ds := capturedIn(
		dgram(tServer, tNAT, "o", cliLogged(got)), // before: delivered
		dgram(tNAT, tServer, "c"),                 // the client's last from the old binding
		dgram(tServer, tNAT, "o", cliLogged(got)), // after, but the client got it
		dgram(tServer, tNAT, "o"),                 // dropped
		dgram(tServer, tNew, "n"),                 // to the new binding
		dgram(tServer, tNAT, "o"),                 // dropped
	)
	var at []int
	for _, d := range droppedAtOld(ds, tServer, rb, ds[1]) {
		at = append(at, d.Index)
	}
	if !slices.Equal(at, []int{3, 5}) {
		t.Errorf("dropped %v, want [3 5]", at)
	}
	if d := droppedAtOld(ds, tServer, rb, nil); d != nil {
		t.Errorf("with no datagram from the old binding: %d dropped, want none", len(d))
	}
}
