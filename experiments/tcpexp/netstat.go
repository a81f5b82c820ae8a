package tcpexp

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// The kernel's TCP counters of the lab's network namespace, from
// /proc/net/netstat (per namespace): tcp/syn-cookies reads them before and
// after each of its legs.

// errNetstat: /proc/net/netstat could not be read or parsed.
var errNetstat = errors.New("tcpexp: /proc/net/netstat")

// parseNetstat parses /proc/net/netstat: pairs of lines, a header of
// counter names and a line of values, both prefixed with the group
// ("TcpExt: SyncookiesSent …" / "TcpExt: 0 …"). Counters are keyed
// "TcpExt.SyncookiesSent".
func parseNetstat(b []byte) (map[string]uint64, error) {
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines)%2 != 0 {
		return nil, fmt.Errorf("%w: %d lines, want header and value lines in pairs", errNetstat, len(lines))
	}
	out := map[string]uint64{}
	for i := 0; i < len(lines); i += 2 {
		names, values := bytes.Fields(lines[i]), bytes.Fields(lines[i+1])
		if len(names) == 0 || len(values) == 0 {
			return nil, fmt.Errorf("%w: line %d or %d is empty", errNetstat, i+1, i+2)
		}
		group := names[0]
		if !bytes.HasSuffix(group, []byte(":")) || !bytes.Equal(group, values[0]) {
			return nil, fmt.Errorf("%w: line %d begins %q, line %d %q: want the same group name ending in ':'", errNetstat, i+1, group, i+2, values[0])
		}
		if len(names) != len(values) {
			return nil, fmt.Errorf("%w: group %s has %d names and %d values", errNetstat, group, len(names)-1, len(values)-1)
		}
		g := string(group[:len(group)-1])
		for j := 1; j < len(names); j++ {
			v, err := strconv.ParseUint(string(values[j]), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%w: %s.%s = %q: %w", errNetstat, g, names[j], values[j], err)
			}
			out[g+"."+string(names[j])] = v
		}
	}
	return out, nil
}

// cookieCounters are the TcpExt counters that tell what a listener did
// with SYNs and with the ACKs that complete cookie'd handshakes.
type cookieCounters struct {
	SyncookiesSent, SyncookiesRecv, SyncookiesFailed uint64
	ListenOverflows, ListenDrops                     uint64
	ReqQFullDoCookies                                uint64 // TCPReqQFullDoCookies: cookies sent because the SYN queue was full
}

// cookieCounterNames are the counters' names in /proc/net/netstat, in
// cookieCounters' order.
var cookieCounterNames = []string{"SyncookiesSent", "SyncookiesRecv", "SyncookiesFailed", "ListenOverflows", "ListenDrops", "TCPReqQFullDoCookies"}

func (c *cookieCounters) fields() []*uint64 {
	return []*uint64{&c.SyncookiesSent, &c.SyncookiesRecv, &c.SyncookiesFailed, &c.ListenOverflows, &c.ListenDrops, &c.ReqQFullDoCookies}
}

// cookieCountersFrom picks the counters out of a parsed netstat; a missing
// one is an error naming it.
func cookieCountersFrom(m map[string]uint64) (cookieCounters, error) {
	var c cookieCounters
	f := c.fields()
	for i, name := range cookieCounterNames {
		v, ok := m["TcpExt."+name]
		if !ok {
			return cookieCounters{}, fmt.Errorf("%w: no TcpExt counter %s", errNetstat, name)
		}
		*f[i] = v
	}
	return c, nil
}

// readCookieCounters reads the counters of the current namespace.
func readCookieCounters() (cookieCounters, error) {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return cookieCounters{}, fmt.Errorf("%w: %w", errNetstat, err)
	}
	m, err := parseNetstat(b)
	if err != nil {
		return cookieCounters{}, err
	}
	return cookieCountersFrom(m)
}

// since is c − before, counter by counter.
func (c cookieCounters) since(before cookieCounters) cookieCounters {
	var d cookieCounters
	df, cf, bf := d.fields(), c.fields(), before.fields()
	for i := range df {
		*df[i] = *cf[i] - *bf[i]
	}
	return d
}

// rows renders before, after and their difference as table rows.
func (c cookieCounters) rows(before cookieCounters) [][]string {
	d := c.since(before)
	var rows [][]string
	cf, bf, df := c.fields(), before.fields(), d.fields()
	for i, name := range cookieCounterNames {
		rows = append(rows, []string{"TcpExt " + name, strconv.FormatUint(*bf[i], 10), strconv.FormatUint(*cf[i], 10), "+" + strconv.FormatUint(*df[i], 10)})
	}
	return rows
}
