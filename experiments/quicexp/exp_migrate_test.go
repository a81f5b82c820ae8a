package quicexp

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// A client packet on a path after the client switched away from it is
// late; one sent before the switch, or received, is not.
func TestClientLate(t *testing.T) {
	switched := t0.Add(10 * time.Millisecond)
	h := &hop{from: tClient, to: tNew, switchedAt: switched}
	sentAt := func(at time.Duration) func(*Datagram) {
		return cliLogged(PacketEvent{Sent: true, Time: t0.Add(at)})
	}
	ds := capturedIn(
		dgram(tClient, tServer, "a", sentAt(5*time.Millisecond)),                                  // before the switch
		dgram(tNew, tServer, "b", sentAt(11*time.Millisecond)),                                    // on the new path
		dgram(tClient, tServer, "a", sentAt(12*time.Millisecond)),                                 // late
		dgram(tServer, tClient, "s", cliLogged(PacketEvent{Time: t0.Add(13 * time.Millisecond)})), // received, not sent
		dgram(tClient, tServer, "a"),                                                              // no record of the client's
	)
	late := clientLate(ds, []*hop{h})
	if len(late) != 1 || late[0].Index != 2 {
		t.Fatalf("late %v, want datagram 2 alone", late)
	}
	if n := hopLeaving([]*hop{{from: tNAT}, h}, tClient); n != 2 {
		t.Errorf("hop leaving %s: %d, want 2", tClient, n)
	}
}

// The server sends to a path it switched away from only when a later
// switch made it the active path again.
func TestServerLate(t *testing.T) {
	sent := func(seq int) func(*Datagram) { return srvLogged(PacketEvent{Sent: true, Seq: seq}) }
	toNew := TupleEvent{Remote: tNew, Seq: 10}
	backToFirst := TupleEvent{Remote: tClient, Seq: 20}
	for _, tc := range []struct {
		name   string
		ds     []*Datagram
		tuples []TupleEvent
		late   int
	}{
		{"to the old path before the switch", capturedIn(dgram(tServer, tClient, "a", sent(5))), []TupleEvent{toNew}, 0},
		{"to the old path after the switch", capturedIn(dgram(tServer, tClient, "a", sent(11))), []TupleEvent{toNew}, 1},
		{"to the new path after the switch", capturedIn(dgram(tServer, tNew, "b", sent(11))), []TupleEvent{toNew}, 0},
		{"to the first path once it is active again", capturedIn(dgram(tServer, tClient, "a", sent(21))), []TupleEvent{toNew, backToFirst}, 0},
		{"to the second path after leaving it", capturedIn(dgram(tServer, tNew, "b", sent(21))), []TupleEvent{toNew, backToFirst}, 1},
		{"a probe's tuple is not a switch", capturedIn(dgram(tServer, tClient, "a", sent(11))), []TupleEvent{{ID: "1", Remote: tNew, Seq: 10}}, 0},
		{"no record of the server's", capturedIn(dgram(tServer, tClient, "a")), []TupleEvent{toNew}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if late, _ := serverLate(tc.ds, tServer, tClient, tc.tuples); late != tc.late {
				t.Errorf("%d late, want %d", late, tc.late)
			}
		})
	}
}

// Every connection ID on one path only, a new one on each path: counted
// over every datagram, the coalesced 1-RTT packet of a handshake datagram
// included.
func TestReadPathCIDs(t *testing.T) {
	tail := func(dcid string) func(*Datagram) { return func(d *Datagram) { d.TailDCID = dcid } }
	for _, tc := range []struct {
		name       string
		ds         []*Datagram
		paths      int
		shared     []string
		newPerPath bool
	}{
		{"two paths, their own connection IDs", capturedIn(
			dgram(tClient, tServer, "c1"), dgram(tServer, tClient, "s1"),
			dgram(tNew, tServer, "c2"), dgram(tServer, tNew, "s2"),
		), 2, nil, true},
		{"the server reuses its connection ID on the new path", capturedIn(
			dgram(tClient, tServer, "c1"), dgram(tServer, tClient, "s1"),
			dgram(tNew, tServer, "c2"), dgram(tServer, tNew, "s1"),
		), 2, []string{"s1"}, true},
		{"the client keeps its connection ID on the new path", capturedIn(
			dgram(tClient, tServer, "c1"), dgram(tNew, tServer, "c1"),
		), 2, []string{"c1"}, false},
		{"a coalesced packet's connection ID counts too", capturedIn(
			dgram(tServer, tClient, "x", long("handshake", "s"), tail("c9")),
			dgram(tClient, tServer, "c1"), dgram(tNew, tServer, "c9"),
		), 2, []string{"c9"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := readPathCIDs(tc.ds, tServer)
			if len(p.order) != tc.paths || !slices.Equal(p.shared, tc.shared) || p.newPerPath(tc.paths) != tc.newPerPath {
				t.Errorf("%d paths %v, shared %v, new per path %t; want %d, %v, %t", len(p.order), p.order, p.shared, p.newPerPath(tc.paths), tc.paths, tc.shared, tc.newPerPath)
			}
			if p.newPerPath(tc.paths + 1) {
				t.Errorf("new per path with %d paths wanted and %d seen", tc.paths+1, tc.paths)
			}
		})
	}
}

// A hop is made when it was probed and switched at quiescent moments.
func TestHopOK(t *testing.T) {
	fail := errors.New("x")
	for _, tc := range []struct {
		h  hop
		ok bool
	}{
		{hop{}, true},
		{hop{early: fail}, true}, // the early Switch is meant to fail
		{hop{probe: fail}, false},
		{hop{sw: fail}, false},
		{hop{quiet: fail}, false},
	} {
		if tc.h.ok() != tc.ok {
			t.Errorf("%+v: ok %t, want %t", tc.h, tc.h.ok(), tc.ok)
		}
	}
}
