package tcpexp

import (
	"errors"
	"strings"
	"testing"
)

const netstatSample = `TcpExt: SyncookiesSent SyncookiesRecv SyncookiesFailed ListenOverflows ListenDrops TCPReqQFullDoCookies
TcpExt: 5 2 1 0 3 4
IpExt: InOctets OutOctets
IpExt: 18446744073709551615 7
`

func TestParseNetstat(t *testing.T) {
	m, err := parseNetstat([]byte(netstatSample))
	if err != nil {
		t.Fatal(err)
	}
	c, err := cookieCountersFrom(m)
	if err != nil {
		t.Fatal(err)
	}
	want := cookieCounters{SyncookiesSent: 5, SyncookiesRecv: 2, SyncookiesFailed: 1, ListenDrops: 3, ReqQFullDoCookies: 4}
	if c != want {
		t.Errorf("counters %+v, want %+v", c, want)
	}
	if m["IpExt.InOctets"] != 1<<64-1 || m["IpExt.OutOctets"] != 7 {
		t.Errorf("IpExt: %v", m)
	}
}

func TestParseNetstatRejects(t *testing.T) {
	tests := []struct {
		name, in, errText string
	}{
		{"an odd number of lines", "TcpExt: A\n", "in pairs"},
		{"groups that differ", "TcpExt: A\nIpExt: 1\n", "the same group name"},
		{"no colon", "TcpExt A\nTcpExt 1\n", "the same group name"},
		{"more names than values", "TcpExt: A B\nTcpExt: 1\n", "2 names and 1 values"},
		{"a value that is no number", "TcpExt: A\nTcpExt: x\n", `TcpExt.A = "x"`},
		{"a negative value", "TcpExt: A\nTcpExt: -1\n", `TcpExt.A = "-1"`},
		{"an empty line", "TcpExt: A\n\nIpExt: B\nIpExt: 1\n", "is empty"},
	}
	for _, tt := range tests {
		_, err := parseNetstat([]byte(tt.in))
		if err == nil || !errors.Is(err, errNetstat) || !strings.Contains(err.Error(), tt.errText) {
			t.Errorf("%s: err %v, want errNetstat with %q", tt.name, err, tt.errText)
		}
	}
}

func TestCookieCountersNameTheMissingOne(t *testing.T) {
	m, err := parseNetstat([]byte("TcpExt: SyncookiesSent\nTcpExt: 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cookieCountersFrom(m); err == nil || !strings.Contains(err.Error(), "SyncookiesRecv") {
		t.Errorf("err %v, want it to name SyncookiesRecv", err)
	}
}

func TestCookieCountersSince(t *testing.T) {
	a := cookieCounters{SyncookiesSent: 3, SyncookiesFailed: 1}
	b := cookieCounters{SyncookiesSent: 7, SyncookiesRecv: 2, SyncookiesFailed: 2}
	if d := b.since(a); d != (cookieCounters{SyncookiesSent: 4, SyncookiesRecv: 2, SyncookiesFailed: 1}) {
		t.Errorf("since: %+v", d)
	}
	rows := b.rows(a)
	if len(rows) != len(cookieCounterNames) || strings.Join(rows[0], " ") != "TcpExt SyncookiesSent 3 7 +4" {
		t.Errorf("rows: %v", rows)
	}
}

// The namespace's own /proc/net/netstat parses and holds every counter.
func TestReadCookieCounters(t *testing.T) {
	if _, err := readCookieCounters(); err != nil {
		t.Fatal(err)
	}
}

func FuzzParseNetstat(f *testing.F) {
	f.Add([]byte(netstatSample))
	f.Add([]byte(""))
	f.Add([]byte("TcpExt: A\nTcpExt: 1"))
	f.Add([]byte(":\n:\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseNetstat(b)
		if err != nil && m != nil {
			t.Fatalf("a map with an error: %v", err)
		}
	})
}
