package udpdns

import (
	"errors"
	"net/netip"
	"testing"

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
		case n < headerLen:
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

// FuzzReplyPath feeds any bytes, from the server or from elsewhere, to a
// client with one query in flight: nothing panics, and the query completes
// only with a reply that matches it in every respect.
func FuzzReplyPath(f *testing.F) {
	good := packed(f, "fuzz.synth.lab.", dns.TypeA, true)
	f.Add(good, true)
	f.Add(good[:20], true)
	f.Add(good, false)
	f.Add([]byte{}, true)
	server := netip.MustParseAddrPort("127.0.0.1:53")
	other := netip.MustParseAddrPort("127.0.0.2:53")
	f.Fuzz(func(t *testing.T, b []byte, fromServer bool) {
		c := &Client{cfg: Config{Server: server, Quarantine: 1e9, Linger: 1e9, MaxReply: 4096}}
		s := &sock{c: c}
		m := new(dns.Msg)
		m.SetQuestion("fuzz.synth.lab.", dns.TypeA)
		call, err := c.prepare(m, 0)
		if err != nil {
			t.Fatal(err)
		}
		call.s, call.id, call.state = s, 0xbeef, EventSent
		call.packed[0], call.packed[1] = 0xbe, 0xef
		s.inflight[0xbeef] = call
		s.n, s.st.Sent = 1, 1
		from := other
		if fromServer {
			from = server
		}
		s.handle(from, b)
		s.mu.Lock()
		st := s.st
		st.InFlight = uint64(s.n)
		s.mu.Unlock()
		if !st.Consistent() {
			t.Fatalf("counters %v", st)
		}
		select {
		case <-call.done:
			h, err := ParseHead(b)
			if err != nil || !fromServer || h.ID != 0xbeef || !h.Response() || !h.HasQuestion ||
				!equalFold(h.QName, call.qname) || h.QType != dns.TypeA || h.QClass != dns.ClassINET {
				t.Fatalf("completed by a reply that does not match: from %v %+v", from, h)
			}
		default:
			if st.Matched != 0 {
				t.Fatal("matched but not done")
			}
		}
	})
}
