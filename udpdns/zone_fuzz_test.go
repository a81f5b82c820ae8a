package udpdns

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// A zone file is input from the user: any bytes parse to a zone or to an
// error, never a panic, and a zone parsed answers its own example.
func FuzzParseZone(f *testing.F) {
	f.Add("$ORIGIN example.test.\n@ IN SOA ns h 1 3600 600 86400 60\nwww IN A 198.51.100.80\n")
	f.Add("$ORIGIN example.test.\n@ IN SOA ns h 1 3600 600 86400 60\n$GENERATE 1-3 h$ CNAME h${1}\n")
	f.Add("$INCLUDE /etc/passwd\n")
	f.Add("@ IN SOA ns h 1 3600 600 86400 60\na CNAME b\nb CNAME a\n")
	f.Fuzz(func(t *testing.T, zone string) {
		if len(zone) > 4096 {
			return
		}
		z, err := ParseZone(strings.NewReader(zone), "", "fuzz")
		if err != nil {
			return
		}
		// Whatever the zone, answering its example is bounded and whole.
		name, qtype := z.Example()
		q := new(dns.Msg)
		q.SetQuestion(dns.Fqdn(name), qtype)
		if r := z.Answer(q); r == nil || r.Id != q.Id {
			t.Fatalf("Answer(%s %d) = %v", name, qtype, r)
		}
	})
}

// What `dns serve` answers comes from datagrams anyone can send: any bytes
// miekg/dns unpacks get an answer from the zone (built in or loaded, with
// CNAME chains and loops), never a panic, and the answer packs again.
func FuzzZoneAnswer(f *testing.F) {
	loop, err := ParseZone(strings.NewReader("$ORIGIN example.test.\n@ IN SOA ns h 1 3600 600 86400 60\na 60 CNAME b\nb 60 CNAME a\nc 60 CNAME out.example.\n"), "", "loop")
	if err != nil {
		f.Fatal(err)
	}
	zones := []*Zone{BuiltinZone(), loop}
	for _, q := range []struct {
		name  string
		qtype uint16
	}{{"example.lab.", dns.TypeA}, {"x.synth.lab.", dns.TypeAAAA}, {"a.example.test.", dns.TypeA}, {"C.EXAMPLE.TEST.", dns.TypeANY}, {"nope.", dns.TypeA}} {
		m := new(dns.Msg)
		m.SetQuestion(q.name, q.qtype)
		m.SetEdns0(4096, true)
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		req := new(dns.Msg)
		if req.Unpack(b) != nil {
			return
		}
		for _, z := range zones {
			r := z.Answer(req)
			if r.Id != req.Id || len(r.Answer) > 16 {
				t.Fatalf("answer %v to %v", r, req)
			}
			r.Truncate(ClientUDPSize(req))
			if _, err := r.Pack(); err != nil {
				t.Fatalf("the answer does not pack: %v\n%v", err, r)
			}
		}
	})
}
