package udpdns

import (
	"bytes"
	"errors"
	"net"
	"testing"

	"github.com/miekg/dns"
)

// answerReply is a reply to name A with two answers and an OPT record,
// compressed (the answers' owner names point at the question).
func answerReply(t testing.TB, name string) []byte {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeA)
	m.Response = true
	m.Compress = true
	for _, ip := range []string{"192.0.2.1", "192.0.2.2"} {
		m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.ParseIP(ip)})
	}
	m.Ns = append(m.Ns, &dns.NS{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 60}, Ns: "ns." + name})
	m.SetEdns0(1232, false)
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// questionEnd is where the question of a packed message ends.
func questionEnd(t testing.TB, b []byte) int {
	h, err := ParseHead(b)
	if err != nil || !h.HasQuestion {
		t.Fatalf("ParseHead: %v", err)
	}
	return HeaderLen + len(h.QName) + 4
}

func TestWalkRecords(t *testing.T) {
	good := answerReply(t, "www.synth.lab.")
	q := questionEnd(t, good)
	with := func(b []byte, off int, v ...byte) []byte {
		b = append([]byte(nil), b...)
		copy(b[off:], v)
		return b
	}
	// The first answer's owner name is the pointer at q (0xc0 0x0c); its
	// RDLENGTH is at q+10. ns is where the NS record's RDATA, a name,
	// starts.
	ns := bytes.Index(good, []byte("\x02ns"))
	if ns < 0 || ns > 0xff {
		t.Fatalf("NS RDATA at %d", ns)
	}
	tests := []struct {
		name string
		in   []byte
		bad  bool
	}{
		{"whole reply", good, false},
		{"question only, counts zero", with(good[:q], 6, 0, 0, 0, 0, 0, 0), false},
		{"counts overstate a message that ends between records", with(good, 6, 0, 9), false},
		{"pointer forward to a later name, as miekg/dns allows", with(good, q, 0xc0, byte(ns)), false},
		{"pointer to itself (a loop)", with(good, q, 0xc0, byte(q)), true},
		{"reserved label type 0x40", with(good, q, 0x40), true},
		{"reserved label type 0x80", with(good, q, 0x80), true},
		{"RDLENGTH past the end", with(good, q+10, 0xff, 0xff), true},
		{"label past the end", append(with(good[:q], 6, 0, 1), 5, 'a'), true},
		{"pointer cut after its first byte", append(with(good[:q], 6, 0, 1), 0xc0), true},
		{"fixed fields cut", append(with(good[:q], 6, 0, 1), 0xc0, 0x0c, 0, 1, 0, 1), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := walkRecords(tc.in, q)
			if (err != nil) != tc.bad {
				t.Fatalf("walkRecords = %v, want bad=%v", err, tc.bad)
			}
			if err != nil && !errors.Is(err, ErrMalformed) {
				t.Errorf("error %v is not ErrMalformed", err)
			}
			if err != nil && new(dns.Msg).Unpack(tc.in) == nil {
				t.Errorf("walkRecords refused what miekg/dns unpacks: %v", err)
			}
		})
	}
}

// Cut at every length, a well-formed reply is refused by the walk exactly
// where miekg/dns refuses it: the walk checks every byte a full unpack
// needs except what lies inside a record's RDATA, and a cut inside RDATA
// leaves the RDLENGTH pointing past the end.
func TestWalkRecordsAgreesWithMiekgOnEveryCut(t *testing.T) {
	good := answerReply(t, "www.synth.lab.")
	q := questionEnd(t, good)
	for n := q; n <= len(good); n++ {
		walkErr := walkRecords(good[:n], q)
		unpackErr := new(dns.Msg).Unpack(good[:n])
		if (walkErr == nil) != (unpackErr == nil) {
			t.Errorf("cut at %d of %d: walk %v, miekg/dns %v", n, len(good), walkErr, unpackErr)
		}
	}
}

// A good reply's walk allocates nothing.
func TestWalkRecordsDoesNotAllocate(t *testing.T) {
	good := answerReply(t, "www.synth.lab.")
	q := questionEnd(t, good)
	if n := testing.AllocsPerRun(100, func() { _ = walkRecords(good, q) }); n != 0 {
		t.Fatalf("%v allocations per walk", n)
	}
}

// The walk is never stricter than miekg/dns: whatever miekg/dns unpacks,
// with a question the reply path can match, the walk passes.
func FuzzWalkRecords(f *testing.F) {
	f.Add(answerReply(f, "www.synth.lab."))
	f.Add(answerReply(f, "a."))
	f.Add(packed(f, "x.synth.lab.", dns.TypeA, true))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := ParseHead(b)
		if err != nil || !h.HasQuestion {
			return
		}
		walkErr := walkRecords(b, HeaderLen+len(h.QName)+4)
		if walkErr == nil {
			return
		}
		if !errors.Is(walkErr, ErrMalformed) {
			t.Fatalf("error %v is not ErrMalformed", walkErr)
		}
		if new(dns.Msg).Unpack(b) == nil {
			t.Fatalf("walk refused %x, which miekg/dns unpacks: %v", b, walkErr)
		}
	})
}

// Checking a matched reply's records (what the reader does now) against
// unpacking it with miekg/dns (what it did): a reply with two answers, an
// NS record and an OPT record.
func BenchmarkWalkRecords(b *testing.B) {
	good := answerReply(b, "www.synth.lab.")
	q := questionEnd(b, good)
	b.Run("udpdns/walkRecords", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if walkRecords(good, q) != nil {
				b.Fatal("refused")
			}
		}
	})
	b.Run("baseline/miekg-Unpack", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if new(dns.Msg).Unpack(good) != nil {
				b.Fatal("refused")
			}
		}
	})
}
