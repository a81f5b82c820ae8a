package quicexp

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/quic-go/quic-go"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/lab/labtest"
	"github.com/statelab/statelab/quicconn/lb"
)

// triggerOf finds the client datagram a backend's stateless reset
// answers by the token of its DCID, and refuses a reply whose last 16
// bytes are not that token.
func TestTriggerOfStatelessReset(t *testing.T) {
	var key quic.StatelessResetKey
	copy(key[:], "a lab's shared stateless reset k")
	client := netip.MustParseAddrPort("127.0.0.2:5000")
	dcid, _ := lbConfig.Encode(lbConfig.ServerID(0), []byte{1, 2, 3, 4, 5})
	pkt := append(append([]byte{0x40}, dcid...), make([]byte, 40)...)
	reset := func(token []byte) []byte { return append(append([]byte{0x5a}, make([]byte, 25)...), token...) }
	for _, tc := range []struct {
		name  string
		reply []byte
		want  bool
	}{
		{"the token of the DCID", reset(tokenBytes(key, dcid)), true},
		{"another CID's token", reset(tokenBytes(key, []byte{1, 2, 3, 4, 5, 6, 7, 8})), false},
		{"a long header packet", append([]byte{0xc0}, reset(tokenBytes(key, dcid))[1:]...), false},
		{"too short", tokenBytes(key, dcid), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Datagram{Index: 3, Src: client, payload: pkt}
			ph := &lbPhase{legs: []*backendLeg{
				{index: 4, toB: true, backend: 1, client: client, peer: d},
				{index: 5, toB: false, backend: 1, client: client, payload: tc.reply},
			}}
			if got := ph.triggerOf(ph.legs[1], key) == d; got != tc.want {
				t.Errorf("stateless reset %t, want %t", got, tc.want)
			}
		})
	}
}

// The check "no per-connection table" can fail: a struct with a map
// field is found.
func TestMapFields(t *testing.T) {
	type withMap struct {
		a int
		m map[string]int
	}
	if got := mapFields(reflect.TypeOf(withMap{})); len(got) != 1 || got[0] != "withMap.m" {
		t.Errorf("mapFields = %v, want [withMap.m]", got)
	}
	if got := mapFields(reflect.TypeOf(lb.Balancer{}), reflect.TypeOf(lb.Stats{})); len(got) != 0 {
		t.Errorf("the balancer has map fields: %v", got)
	}
}

func TestDescribeMoves(t *testing.T) {
	a, b := netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.2:2")
	if got := describeMoves(nil); got != "none" {
		t.Errorf("no moves: %q", got)
	}
	got := describeMoves([]lbMove{{how: "NAT rebinding", from: a, to: b, backend: 2}, {how: "migration", from: b, to: a, backend: -1}})
	if got != "NAT rebinding 127.0.0.1:1 → 127.0.0.2:2 (hashes to backend 3), migration 127.0.0.2:2 → 127.0.0.1:1" {
		t.Errorf("got %q", got)
	}
}

// The experiment passes; every captured datagram carries a comment, the
// backend legs say what they carry, and Wireshark decrypts the client
// leg with the embedded key log.
func TestLoadBalancerExperiment(t *testing.T) {
	r := labtest.RunExperiment(t, experiment("quic/load-balancer"), 1)
	if r.Metrics["cid_transfer_bytes"] != float64(transferSize) || r.Metrics["routes_recomputed_count"] == 0 {
		t.Errorf("metrics %v", r.Metrics)
	}
	if r.Holding == nil || r.Holding.CarriedBytes != lbConfig.ServerIDLen || !strings.Contains(r.Holding.ServerKeeps, "the balancer keeps nothing") {
		t.Errorf("holding row %+v", r.Holding)
	}
	f, err := capture.ReadFile(r.Captures[0])
	if err != nil {
		t.Fatal(err)
	}
	bare := 0
	for _, p := range f.Packets {
		if len(p.Comments) == 0 {
			bare++
		}
	}
	if len(f.Packets) == 0 || bare != 0 {
		t.Errorf("%d of %d packets carry no comment", bare, len(f.Packets))
	}
	if labtest.LookTool(t, "tshark") == "" {
		return
	}
	if n := labtest.TsharkCount(t, r.Captures[0], "quic.decryption_failed"); n != 0 {
		t.Errorf("%d client-leg packets tshark could not decrypt", n)
	}
}

// tokenBytes is resetToken as a slice, for building packets.
func tokenBytes(key quic.StatelessResetKey, cid []byte) []byte {
	t := resetToken(key[:], cid)
	return t[:]
}
