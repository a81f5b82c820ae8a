package tcpexp

import (
	"testing"

	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// The hooks of tcp/syn-cookies' connections: SACK-permitted on the SYN,
// timestamps echoing the kernel's last TSval, the final ACK held (a
// handshake to complete) or every segment after the SYN withheld (a SYN
// never completed).
func TestCookieHook(t *testing.T) {
	syn := func() *tcpstate.Segment {
		return &tcpstate.Segment{Flags: tcpstate.SYN, Options: tcpstate.Options{MSS: 1400, HasWScale: true, WScale: 3}}
	}
	ack := func() *tcpstate.Segment { return &tcpstate.Segment{Flags: tcpstate.ACK} }
	tests := []struct {
		name  string
		hook  *cookieHook
		segs  []*tcpstate.Segment
		want  []rawtcp.Verdict
		check func(t *testing.T, h *cookieHook, segs []*tcpstate.Segment)
	}{
		{"never completed: the SYN passes, the rest is withheld", &cookieHook{sack: true}, []*tcpstate.Segment{syn(), ack(), ack()},
			[]rawtcp.Verdict{rawtcp.Pass, rawtcp.Drop, rawtcp.Drop}, func(t *testing.T, h *cookieHook, segs []*tcpstate.Segment) {
				if !segs[0].Options.SACKPermitted || segs[0].Options.HasTimestamps {
					t.Errorf("SYN options %+v, want SACK-permitted and no timestamps", segs[0].Options)
				}
				if h.synWS.Load() != 3 || h.synMSS.Load() != 1400 {
					t.Errorf("the SYN's wscale %d, MSS %d recorded", h.synWS.Load(), h.synMSS.Load())
				}
			}},
		{"completed: the final ACK is held, later segments pass", &cookieHook{hold: true}, []*tcpstate.Segment{syn(), ack(), ack()},
			[]rawtcp.Verdict{rawtcp.Pass, rawtcp.Hold, rawtcp.Pass}, func(t *testing.T, h *cookieHook, segs []*tcpstate.Segment) {
				if segs[0].Options.SACKPermitted {
					t.Error("SACK-permitted without sack")
				}
			}},
		{"timestamps: the ACK echoes the kernel's TSval", &cookieHook{ts: true, hold: true, clock: func() uint32 { return 77 }}, []*tcpstate.Segment{syn(), ack()},
			[]rawtcp.Verdict{rawtcp.Pass, rawtcp.Hold}, func(t *testing.T, h *cookieHook, segs []*tcpstate.Segment) {
				if o := segs[0].Options; !o.HasTimestamps || o.TSVal != 77 || o.TSEcr != 0 {
					t.Errorf("SYN timestamps %+v, want TSval 77, TSecr 0", o)
				}
				if o := segs[1].Options; !o.HasTimestamps || o.TSEcr != 0xabc0_0013 {
					t.Errorf("ACK timestamps %+v, want TSecr 0xabc00013", o)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, s := range tt.segs {
				if i == 1 { // the kernel's SYN-ACK arrives between the SYN and the ACK
					tt.hook.recv(&tcpstate.Segment{Flags: tcpstate.SYN | tcpstate.ACK, Options: tcpstate.Options{HasTimestamps: true, TSVal: 0xabc0_0013}}, nil)
				}
				if v := tt.hook.send(s, nil); v != tt.want[i] {
					t.Errorf("segment %d (%v): verdict %v, want %v", i, s.Flags, v, tt.want[i])
				}
			}
			tt.check(t, tt.hook, tt.segs)
		})
	}
}
