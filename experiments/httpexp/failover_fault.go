package httpexp

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// errFault is wrapped by errors installing or removing a network fault.
var errFault = errors.New("httpexp: network fault")

// linkFault is a network fault between the Redis group's nodes: nftables
// rules, installed over netlink in a table of their own inside the lab's
// network namespace, that drop every packet from one address to another
// at OUTPUT (before the loopback, so the capture does not see them: what
// the capture holds is what got through). A held replication link is the
// primary → replica direction dropped; a partition is both directions.
type linkFault struct {
	what   string
	at     time.Time
	conn   *nftables.Conn
	table  *nftables.Table
	chain  *nftables.Chain
	pairs  [][2]netip.Addr
	healed bool
}

var faultSeq atomic.Uint32

// dropBetween installs a fault dropping every packet from pair[0] to
// pair[1], for each pair.
func dropBetween(what string, pairs [][2]netip.Addr) (*linkFault, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("%w: netlink: %w", errFault, err)
	}
	f := &linkFault{what: what, conn: c, pairs: pairs}
	f.table = c.AddTable(&nftables.Table{Family: nftables.TableFamilyIPv4,
		Name: fmt.Sprintf("statelab_failover_%d_%d", os.Getpid(), faultSeq.Add(1))})
	policy := nftables.ChainPolicyAccept
	f.chain = c.AddChain(&nftables.Chain{Name: "out", Table: f.table, Type: nftables.ChainTypeFilter,
		Hooknum: nftables.ChainHookOutput, Priority: nftables.ChainPriorityFilter, Policy: &policy})
	for _, p := range pairs {
		src, dst := p[0].As4(), p[1].As4()
		c.AddRule(&nftables.Rule{Table: f.table, Chain: f.chain, Exprs: []expr.Any{
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: src[:]},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: dst[:]},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		}})
	}
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("%w: installing %s (needs CAP_NET_ADMIN in the lab's namespace): %w", errFault, what, err)
	}
	f.at = time.Now()
	return f, nil
}

// both is each pair of a and every b, in both directions.
func both(a netip.Addr, bs ...netip.Addr) [][2]netip.Addr {
	var out [][2]netip.Addr
	for _, b := range bs {
		out = append(out, [2]netip.Addr{a, b}, [2]netip.Addr{b, a})
	}
	return out
}

// from is each pair of a and every b, from a only.
func from(a netip.Addr, bs ...netip.Addr) [][2]netip.Addr {
	var out [][2]netip.Addr
	for _, b := range bs {
		out = append(out, [2]netip.Addr{a, b})
	}
	return out
}

// dropped is how many packets the fault has dropped so far.
func (f *linkFault) dropped() int64 {
	rules, err := f.conn.GetRules(f.table, f.chain)
	if err != nil {
		return -1
	}
	var n int64
	for _, r := range rules {
		for _, e := range r.Exprs {
			if c, ok := e.(*expr.Counter); ok {
				n += int64(c.Packets)
			}
		}
	}
	return n
}

// heal removes the fault; healing it again does nothing.
func (f *linkFault) heal() error {
	if f == nil || f.healed {
		return nil
	}
	f.healed = true
	f.conn.DelTable(f.table)
	if err := f.conn.Flush(); err != nil {
		return fmt.Errorf("%w: removing %s: %w", errFault, f.what, err)
	}
	return nil
}

// describe words the pairs for a report.
func (f *linkFault) describe(names func(netip.Addr) string) string {
	var parts []string
	for _, p := range f.pairs {
		parts = append(parts, names(p[0])+"→"+names(p[1]))
	}
	return strings.Join(parts, ", ")
}
