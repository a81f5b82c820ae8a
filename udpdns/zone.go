package udpdns

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/miekg/dns"
)

// SynthSuffix is the subtree of the built-in zone where every name exists:
// NAME.synth.lab. has one A record, SynthA(NAME). Experiments query
// thousands of distinct names and check each caller got its own.
const SynthSuffix = "synth.lab."

// builtinZone is the small zone the server answers from by default.
const builtinZone = `$ORIGIN lab.
$TTL 60
@               IN SOA   ns.lab. hostmaster.lab. 1 3600 600 86400 60
@               IN NS    ns.lab.
ns              IN A     127.0.0.1
example         IN A     192.0.2.1
example         IN AAAA  2001:db8::1
example         IN TXT   "statelab: one question, one answer"
www.example     IN CNAME example.lab.
big             IN TXT   "statelab big answer 01: more than a small EDNS buffer holds, so UDP carries it truncated (TC) and TCP whole"
big             IN TXT   "statelab big answer 02: more than a small EDNS buffer holds, so UDP carries it truncated (TC) and TCP whole"
big             IN TXT   "statelab big answer 03: more than a small EDNS buffer holds, so UDP carries it truncated (TC) and TCP whole"
big             IN TXT   "statelab big answer 04: more than a small EDNS buffer holds, so UDP carries it truncated (TC) and TCP whole"
big             IN TXT   "statelab big answer 05: more than a small EDNS buffer holds, so UDP carries it truncated (TC) and TCP whole"
big             IN TXT   "statelab big answer 06: more than a small EDNS buffer holds, so UDP carries it truncated (TC) and TCP whole"
big             IN TXT   "statelab big answer 07: more than a small EDNS buffer holds, so UDP carries it truncated (TC) and TCP whole"
big             IN TXT   "statelab big answer 08: more than a small EDNS buffer holds, so UDP carries it truncated (TC) and TCP whole"
big             IN TXT   "statelab big answer 09: more than a small EDNS buffer holds, so UDP carries it truncated (TC) and TCP whole"
big             IN TXT   "statelab big answer 10: more than a small EDNS buffer holds, so UDP carries it truncated (TC) and TCP whole"
big             IN TXT   "statelab big answer 11: more than a small EDNS buffer holds, so UDP carries it truncated (TC) and TCP whole"
big             IN TXT   "statelab big answer 12: more than a small EDNS buffer holds, so UDP carries it truncated (TC) and TCP whole"
big             IN TXT   "statelab big answer 13: more than a small EDNS buffer holds, so UDP carries it truncated (TC) and TCP whole"
big             IN TXT   "statelab big answer 14: more than a small EDNS buffer holds, so UDP carries it truncated (TC) and TCP whole"
big             IN TXT   "statelab big answer 15: more than a small EDNS buffer holds, so UDP carries it truncated (TC) and TCP whole"
big             IN TXT   "statelab big answer 16: more than a small EDNS buffer holds, so UDP carries it truncated (TC) and TCP whole"
`

// BigName is the built-in zone's name whose TXT answer (BigTXTRecords
// records, about 2 KB) is larger than any small EDNS0 buffer: over UDP it
// comes back truncated with TC set, over TCP whole.
const BigName = "big.lab."

// BigTXTRecords is how many TXT records BigName has.
const BigTXTRecords = 16

// SynthA is the address the built-in zone gives a name under SynthSuffix:
// 127.x.y.z in 127.128.0.0/9, from 23 bits of a hash of the lower-cased
// name, so distinct names almost always get distinct answers and anyone can
// compute the right one. It is only data in an answer: a loopback address
// points at no one else's network (unlike a private range), and 2^23 values
// keep hundreds of names apart, which RFC 5737's /24 documentation ranges
// (256 values) would not.
func SynthA(name string) netip.Addr {
	h := fnv.New32a()
	_, _ = io.WriteString(h, strings.ToLower(dns.Fqdn(name)))
	v := h.Sum32()
	return netip.AddrFrom4([4]byte{127, 0x80 | byte(v>>16), byte(v >> 8), byte(v)})
}

type rrKey struct {
	name  string
	qtype uint16
}

// Zone is an authoritative zone held in memory, read-only once built. It
// is a dns.Handler: a Server serves it as it is, or wrapped in middleware.
type Zone struct {
	Origin string
	rrs    map[rrKey][]dns.RR
	names  map[string]bool
	soa    dns.RR
	synth  bool
}

// BuiltinZone is lab. with a few records and the synthetic subtree.
func BuiltinZone() *Zone {
	z, err := ParseZone(strings.NewReader(builtinZone), "lab.", "builtin")
	if err != nil {
		panic(err) // the constant above is wrong: a programming error
	}
	z.synth = true
	return z
}

// MaxZoneFileBytes is the largest zone file LoadZoneFile reads.
const MaxZoneFileBytes = 1 << 20

// MaxZoneRecords and MaxZoneRecordBytes bound what a zone holds: a
// $GENERATE line makes up to 65,536 records of one line, each as large as
// a record may be, so the file's byte cap alone does not bound memory.
// The bytes are the records' wire lengths.
const (
	MaxZoneRecords     = 100_000
	MaxZoneRecordBytes = 16 << 20
)

// LoadZoneFile reads a master file of at most MaxZoneFileBytes (a longer
// one, or an endless one such as /dev/zero, is refused after reading that
// much); origin defaults to the file's $ORIGIN or SOA owner.
func LoadZoneFile(path string) (*Zone, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("udpdns: zone file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxZoneFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("udpdns: zone file: %w", err)
	}
	if len(b) > MaxZoneFileBytes {
		return nil, fmt.Errorf("udpdns: zone file %s is larger than %d bytes (1 MiB), the most this server reads", path, MaxZoneFileBytes)
	}
	return ParseZone(bytes.NewReader(b), "", path)
}

// Example is a name and type the zone answers, for a suggestion to try:
// the first name (in sorted order) with an A record, else one with AAAA,
// else the origin's SOA.
func (z *Zone) Example() (name string, qtype uint16) {
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		best := ""
		for k := range z.rrs {
			if k.qtype == t && (best == "" || k.name < best) {
				best = k.name
			}
		}
		if best != "" {
			return best, t
		}
	}
	return z.Origin, dns.TypeSOA
}

// ParseZone reads a zone in master-file format.
func ParseZone(r io.Reader, origin, file string) (*Zone, error) {
	z := &Zone{Origin: dns.CanonicalName(origin), rrs: map[rrKey][]dns.RR{}, names: map[string]bool{}}
	zp := dns.NewZoneParser(r, z.Origin, file)
	n, size := 0, 0
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		if n++; n > MaxZoneRecords {
			return nil, fmt.Errorf("udpdns: zone %s has more than %d records, the most this server holds", file, MaxZoneRecords)
		}
		if size += dns.Len(rr); size > MaxZoneRecordBytes {
			return nil, fmt.Errorf("udpdns: zone %s has more than %d bytes of records (16 MiB), the most this server holds", file, MaxZoneRecordBytes)
		}
		h := rr.Header()
		name := dns.CanonicalName(h.Name)
		k := rrKey{name, h.Rrtype}
		z.rrs[k] = append(z.rrs[k], rr)
		z.names[name] = true
		if h.Rrtype == dns.TypeSOA {
			z.soa = rr
			if z.Origin == "" || z.Origin == "." {
				z.Origin = name
			}
		}
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("udpdns: zone %s: %w", file, err)
	}
	if z.soa == nil {
		return nil, fmt.Errorf("udpdns: zone %s has no SOA record", file)
	}
	return z, nil
}

// Records is the number of records held.
func (z *Zone) Records() int {
	n := 0
	for _, v := range z.rrs {
		n += len(v)
	}
	return n
}

// ServeDNS writes the zone's answer to req: over UDP truncated (TC set) to
// the size the query allows (512 bytes, or its EDNS0 buffer size), over TCP
// whole.
func (z *Zone) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	reply := z.Answer(req)
	if _, tcp := w.RemoteAddr().(*net.TCPAddr); !tcp {
		reply.Truncate(ClientUDPSize(req))
	}
	_ = w.WriteMsg(reply) // a failed write is the server's to count
}

// Answer builds the authoritative reply to req. It keeps no state: the
// same query always gets the same answer.
func (z *Zone) Answer(req *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	m.RecursionAvailable = false
	if req.Opcode != dns.OpcodeQuery {
		m.Rcode = dns.RcodeNotImplemented
		return m
	}
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return m
	}
	q := req.Question[0]
	name := dns.CanonicalName(q.Name)
	if q.Qclass != dns.ClassINET || !dns.IsSubDomain(z.Origin, name) {
		m.Rcode = dns.RcodeRefused
		return m
	}
	if z.synth && dns.IsSubDomain(SynthSuffix, name) && name != SynthSuffix {
		if q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY {
			m.Answer = append(m.Answer, &dns.A{
				Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
				A:   net.IP(SynthA(name).AsSlice()),
			})
		} else {
			m.Ns = append(m.Ns, dns.Copy(z.soa))
		}
		return m
	}
	owner := q.Name
	for range 8 { // follow a bounded CNAME chain inside the zone
		if rrs := z.rrs[rrKey{name, q.Qtype}]; len(rrs) > 0 {
			m.Answer = append(m.Answer, renamed(rrs, owner)...)
			return m
		}
		c := z.rrs[rrKey{name, dns.TypeCNAME}]
		if len(c) == 0 || q.Qtype == dns.TypeCNAME {
			break
		}
		m.Answer = append(m.Answer, renamed(c, owner)...)
		name = dns.CanonicalName(c[0].(*dns.CNAME).Target)
		owner = c[0].(*dns.CNAME).Target
		if !dns.IsSubDomain(z.Origin, name) {
			return m
		}
	}
	if !z.names[name] && len(m.Answer) == 0 {
		m.Rcode = dns.RcodeNameError
	}
	m.Ns = append(m.Ns, dns.Copy(z.soa))
	return m
}

// renamed copies rrs with the owner spelled as asked (0x20 case preserved).
func renamed(rrs []dns.RR, owner string) []dns.RR {
	out := make([]dns.RR, len(rrs))
	for i, rr := range rrs {
		c := dns.Copy(rr)
		c.Header().Name = owner
		out[i] = c
	}
	return out
}
