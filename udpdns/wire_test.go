package udpdns

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func packed(t testing.TB, name string, qtype uint16, resp bool) []byte {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.Id = 0xbeef
	m.Response = resp
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseHead(t *testing.T) {
	good := packed(t, "Example.LAB.", dns.TypeAAAA, true)
	tests := []struct {
		name    string
		in      []byte
		err     error
		hasQ    bool
		qname   string
		qtype   uint16
		respons bool
	}{
		{"empty", nil, ErrShort, false, "", 0, false},
		{"eleven bytes", good[:11], ErrShort, false, "", 0, false},
		{"response with question", good, nil, true, "Example.LAB.", dns.TypeAAAA, true},
		{"query", packed(t, "a.", dns.TypeA, false), nil, true, "a.", dns.TypeA, false},
		{"root name", packed(t, ".", dns.TypeNS, true), nil, true, ".", dns.TypeNS, true},
		{"pointer in question", append(append([]byte{}, good[:12]...), 0xc0, 0x0c, 0, 1, 0, 1), ErrMalformed, false, "", 0, true},
		{"qdcount 0", []byte{0, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0}, nil, false, "", 0, true},
		{"qdcount 2", append([]byte{0, 1, 0x80, 0, 0, 2, 0, 0, 0, 0, 0, 0}, good[12:]...), nil, false, "", 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseHead(tc.in)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if h.HasQuestion != tc.hasQ || h.Response() != tc.respons {
				t.Fatalf("head %+v", h)
			}
			if tc.hasQ && (wireName(h.QName) != tc.qname || h.QType != tc.qtype) {
				t.Errorf("question %q %d, want %q %d", wireName(h.QName), h.QType, tc.qname, tc.qtype)
			}
		})
	}
}

// Every prefix of a valid message either parses to the same header or fails
// cleanly; the full message is the only one with the question.
func TestParseHeadCutAtEveryLength(t *testing.T) {
	b := packed(t, "a.long.name.under.synth.lab.", dns.TypeA, true)
	qEnd := len(b) // question only: packed() has no answers
	for n := 0; n <= len(b); n++ {
		h, err := ParseHead(b[:n])
		switch {
		case n < HeaderLen:
			if !errors.Is(err, ErrShort) {
				t.Errorf("len %d: err %v, want ErrShort", n, err)
			}
		case n < qEnd:
			if !errors.Is(err, ErrMalformed) || h.HasQuestion {
				t.Errorf("len %d: err %v, question %v; want ErrMalformed", n, err, h.HasQuestion)
			}
		default:
			if err != nil || !h.HasQuestion || h.ID != 0xbeef {
				t.Errorf("len %d: %v %+v", n, err, h)
			}
		}
	}
}

func TestParseHeadDoesNotAllocate(t *testing.T) {
	b := packed(t, "q1.synth.lab.", dns.TypeA, true)
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseHead(b) }); n != 0 {
		t.Errorf("%v allocations per parse", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseHead(b[:15]) }); n != 0 {
		t.Errorf("%v allocations per failed parse", n)
	}
}

func FuzzParseHead(f *testing.F) {
	f.Add(packed(f, "q1.synth.lab.", dns.TypeA, true))
	f.Add(packed(f, ".", dns.TypeNS, false))
	f.Add([]byte{0, 1, 0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHead(b)
		if err != nil || !h.HasQuestion {
			return
		}
		// Whatever parsed must agree with miekg/dns on the question.
		m := new(dns.Msg)
		if m.Unpack(b) == nil && len(m.Question) == 1 {
			q := m.Question[0]
			if q.Qtype != h.QType || q.Qclass != h.QClass {
				t.Fatalf("miekg %v, ParseHead %d %d", q, h.QType, h.QClass)
			}
		}
	})
}

// fuzzCall is one query a FuzzReplyPath client has sent, in some state.
type fuzzCall struct {
	name   string
	qtype  uint16
	opcode int
	id     uint16
	state  EventKind // EventSent: in flight; EventTimedOut: in quarantine; EventMatched: lingering
}

var fuzzCalls = []fuzzCall{
	{"fuzz.synth.lab.", dns.TypeA, dns.OpcodeQuery, 0xbeef, EventSent},
	{"FuZz.SyNtH.lab.", dns.TypeA, dns.OpcodeQuery, 0x0220, EventSent}, // 0x20 case
	{"fuzz.synth.lab.", dns.TypeAAAA, dns.OpcodeQuery, 0xbef0, EventSent},
	{"notify.synth.lab.", dns.TypeSOA, dns.OpcodeNotify, 0x4444, EventSent},
	{"fuzz.synth.lab.", dns.TypeA, dns.OpcodeQuery, 0x1111, EventTimedOut},
	{"fuzz.synth.lab.", dns.TypeA, dns.OpcodeQuery, 0x2222, EventMatched},
}

var fuzzSources = []netip.AddrPort{
	netip.MustParseAddrPort("127.0.0.1:53"), // the server (the port is fuzzed)
	netip.MustParseAddrPort("127.0.0.2:53"),
	netip.MustParseAddrPort("[::ffff:127.0.0.1]:53"), // the server, v4-mapped
	netip.MustParseAddrPort("[::1]:53"),
	netip.MustParseAddrPort("0.0.0.0:0"),
}

// fuzzReply builds a datagram: raw bytes as they are (mode bit 0), or a
// header and question from the fields with the raw bytes after them.
func fuzzReply(raw []byte, mode uint8, id, flags uint16, qname []byte, qtype, qclass uint16) []byte {
	if mode&1 != 0 {
		return raw
	}
	b := []byte{byte(id >> 8), byte(id), byte(flags >> 8), byte(flags), 0, 1, 0, 0, 0, 0, 0, 0}
	b = append(b, qname...)
	b = append(b, byte(qtype>>8), byte(qtype), byte(qclass>>8), byte(qclass))
	return append(b, raw...)
}

func wireQName(name string) []byte {
	b := make([]byte, 256)
	n, err := dns.PackDomainName(name, b, 0, nil, false)
	if err != nil {
		panic(err)
	}
	return b[:n]
}

// FuzzReplyPath feeds any datagram from any source to a client (with and
// without DNS 0x20) that has several queries in flight — two differing only
// in QTYPE, one with another opcode, one with mixed case — one in quarantine
// and one lingering. Nothing panics, the counters balance, and a datagram
// completes a query only if it is a response (QR=1) from the server's
// address and port with that query's ID, opcode, QNAME (letter case too
// under 0x20), QTYPE and QCLASS, as miekg/dns decodes it; it completes no
// other query and changes no ended one.
func FuzzReplyPath(f *testing.F) {
	for i, fc := range fuzzCalls {
		flags := uint16(flagQR | fc.opcode<<11)
		q := wireQName(fc.name)
		f.Add([]byte{}, uint8(0), fc.id, flags, q, fc.qtype, uint16(dns.ClassINET), uint8(0), uint16(53))
		f.Add([]byte{}, uint8(2), fc.id, flags, q, fc.qtype, uint16(dns.ClassINET), uint8(2), uint16(53))
		f.Add([]byte{}, uint8(0), fc.id, flags, q, fc.qtype, uint16(dns.ClassINET), uint8(i), uint16(5353))
		f.Add([]byte{0, 1}, uint8(0), fc.id, flags&^flagQR, q, fc.qtype, uint16(dns.ClassCHAOS), uint8(0), uint16(53))
	}
	good := packed(f, "fuzz.synth.lab.", dns.TypeA, true)
	f.Add(good, uint8(1), uint16(0), uint16(0), []byte{}, uint16(0), uint16(0), uint8(0), uint16(53))
	f.Add(good[:20], uint8(1), uint16(0), uint16(0), []byte{}, uint16(0), uint16(0), uint8(0), uint16(53))
	f.Fuzz(func(t *testing.T, raw []byte, mode uint8, id, flags uint16, qname []byte, qtype, qclass uint16, src uint8, port uint16) {
		replyPathCase(t, raw, mode, id, flags, qname, qtype, qclass, src, port)
	})
}

// replyPathCase is one FuzzReplyPath input; it returns the index in
// fuzzCalls of the query completed, or -1.
func replyPathCase(t *testing.T, raw []byte, mode uint8, id, flags uint16, qname []byte, qtype, qclass uint16, src uint8, port uint16) int {
	server := fuzzSources[0]
	b := fuzzReply(raw, mode, id, flags, qname, qtype, qclass)
	exact := mode&2 != 0
	from := fuzzSources[int(src)%len(fuzzSources)]
	from = netip.AddrPortFrom(from.Addr(), port)

	c := &Client{cfg: Config{Server: server, Quarantine: 1e12, Linger: 1e12, MaxReply: 4096, Case0x20: exact}, epoch: time.Now()}
	s := &sock{c: c}
	s.initIDs()
	calls := make([]*Call, len(fuzzCalls))
	for i, fc := range fuzzCalls {
		m := new(dns.Msg)
		m.SetQuestion(fc.name, fc.qtype)
		m.Opcode = fc.opcode
		call, err := c.prepare(m, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		call.name = fc.name // prepare may have mixed the case: keep the table's
		call.qname = wireQName(fc.name)
		call.s, call.id, call.state = s, fc.id, fc.state
		call.packed[0], call.packed[1] = byte(fc.id>>8), byte(fc.id)
		s.st.Sent++
		switch fc.state {
		case EventSent:
			s.inflight[fc.id] = call
			s.n++
		case EventTimedOut:
			s.recent[fc.id] = rest{call: call, until: 1e12}
			s.st.Lost++
			s.st.TimedOut++
			close(call.done)
		case EventMatched:
			s.recent[fc.id] = rest{call: call, until: 1e12}
			s.st.Matched++
			close(call.done)
		}
		calls[i] = call
	}
	before := s.st.Matched

	s.handle(from, b)

	s.mu.Lock()
	st := s.st
	st.InFlight = uint64(s.n)
	s.mu.Unlock()
	if !st.Consistent() {
		t.Fatalf("counters %v", st)
	}
	completed, which := 0, -1
	for i, call := range calls {
		fc := fuzzCalls[i]
		if fc.state != EventSent {
			if call.state != fc.state || call.raw != nil {
				t.Fatalf("ended query %#04x changed: %v, reply %x", fc.id, call.state, call.raw)
			}
			continue
		}
		select {
		case <-call.done:
		default:
			if call.state != EventSent || s.inflight[fc.id] != call {
				t.Fatalf("query %#04x left the table without completing", fc.id)
			}
			continue
		}
		completed++
		which = i
		if why := fuzzMismatch(b, from, server, fc, exact); why != "" {
			t.Fatalf("query %#04x %s %s completed by a datagram from %v that does not match it: %s",
				fc.id, fc.name, dns.TypeToString[fc.qtype], from, why)
		}
		if call.state != EventMatched || len(call.raw) < HeaderLen || binary.BigEndian.Uint16(call.raw) != fc.id {
			t.Fatalf("query %#04x done but not matched: %v", fc.id, call.state)
		}
		r, err := call.Reply()
		if full := new(dns.Msg); full.Unpack(b) != nil {
			if !errors.Is(err, ErrMalformed) || r != nil {
				t.Fatalf("query %#04x matched a reply miekg/dns cannot unpack, and Reply said %v, %v; want ErrMalformed", fc.id, r, err)
			}
		} else if err != nil || r.Id != fc.id {
			t.Fatalf("query %#04x: Reply %v, %v", fc.id, r, err)
		}
	}
	if completed > 1 || st.Matched != before+uint64(completed) {
		t.Fatalf("%d queries completed, matched %d → %d", completed, before, st.Matched)
	}
	return which
}

// The fuzz target's oracle is not vacuous: each query in flight is completed
// by its own reply, and only by it, with and without 0x20.
func TestReplyPathCompletesOnlyItsOwnQuery(t *testing.T) {
	for mode := uint8(0); mode <= 2; mode += 2 {
		for i, fc := range fuzzCalls {
			flags := uint16(flagQR | fc.opcode<<11)
			got := replyPathCase(t, nil, mode, fc.id, flags, wireQName(fc.name), fc.qtype, dns.ClassINET, 0, 53)
			want := i
			if fc.state != EventSent {
				want = -1
			}
			if got != want {
				t.Errorf("0x20=%v: reply to %#04x completed call %d, want %d", mode != 0, fc.id, got, want)
			}
			if got := replyPathCase(t, nil, mode, fc.id, flags, wireQName(fc.name), fc.qtype, dns.ClassINET, 0, 54); got != -1 {
				t.Errorf("reply to %#04x from the wrong port completed call %d", fc.id, got)
			}
		}
	}
	// Under 0x20 the case must be echoed exactly; without it, any case does.
	fc := fuzzCalls[1]
	lower := wireQName(strings.ToLower(fc.name))
	if got := replyPathCase(t, nil, 2, fc.id, flagQR, lower, fc.qtype, dns.ClassINET, 0, 53); got != -1 {
		t.Errorf("0x20: lower-cased echo completed call %d", got)
	}
	if got := replyPathCase(t, nil, 0, fc.id, flagQR, lower, fc.qtype, dns.ClassINET, 0, 53); got != 1 {
		t.Errorf("no 0x20: lower-cased echo completed call %d, want 1", got)
	}
}

// fuzzMismatch is why b from from does not answer fc, judged independently
// of the reply path (by miekg/dns), or "" when it does.
func fuzzMismatch(b []byte, from, server netip.AddrPort, fc fuzzCall, exact bool) string {
	if netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) != server {
		return "wrong source"
	}
	// Judged by miekg/dns on the header and question alone (the counts of
	// the other sections zeroed): the reader checks the records' bounds,
	// and a reply whose RDATA miekg/dns cannot decode still matches (its
	// Reply reports ErrMalformed; replyPathCase checks that).
	hq := append([]byte(nil), b...)
	if len(hq) >= HeaderLen {
		clear(hq[6:12])
	}
	m := new(dns.Msg)
	if err := m.Unpack(hq); err != nil {
		return "header or question does not unpack: " + err.Error()
	}
	switch {
	case m.Id != fc.id:
		return "wrong ID"
	case !m.Response:
		return "QR=0"
	case m.Opcode != fc.opcode:
		return "wrong opcode"
	case len(m.Question) != 1:
		return "not one question"
	case m.Question[0].Qtype != fc.qtype || m.Question[0].Qclass != dns.ClassINET:
		return "wrong QTYPE or QCLASS"
	case exact && m.Question[0].Name != fc.name:
		return "QNAME case differs under 0x20"
	case !strings.EqualFold(m.Question[0].Name, fc.name):
		return "wrong QNAME"
	}
	return ""
}
