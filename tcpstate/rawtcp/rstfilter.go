package rawtcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sync/atomic"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"

	"github.com/statelab/statelab/tcpstate"
)

// ErrRSTFilter: the nftables rule that suppresses the kernel's RSTs could
// not be installed or removed.
var ErrRSTFilter = errors.New("rawtcp: kernel RST filter")

// RST suppression. The kernel's TCP answers every segment for a port it has
// no socket on with a RST (RFC 9293 §3.10.7.1), and the lab's ports are
// exactly such ports: without a filter the kernel would reset every
// connection the lab makes. The filter is one nftables rule, installed over
// netlink (no nft binary) in a table of its own inside the lab's network
// namespace, hooked at OUTPUT:
//
//	table ip statelab_tcp_<pid>_<n> {
//	  chain out { type filter hook output priority filter; policy accept;
//	    meta l4proto tcp ip saddr <lab addr> tcp sport <lab ports>
//	      tcp flags & rst != 0 meta mark != <lab mark> counter drop
//	  }
//	}
//
// It is narrow on purpose: only RSTs, only from the lab's address and port
// range, only those the lab did not send itself (the link marks its own
// segments with SO_MARK), and only in this namespace, for as long as the
// link is open. OUTPUT, not INPUT: a raw socket receives packets after the
// INPUT hook, so dropping the kernel's segments there would hide them from
// the lab too; the kernel's RSTs are dropped before they reach lo.
type rstFilter struct {
	conn  *nftables.Conn
	table *nftables.Table
	chain *nftables.Chain
}

var rstTableSeq atomic.Uint32

func installRSTFilter(addr [4]byte, lo, hi uint16, mark uint32) (*rstFilter, error) {
	c, err := nftables.New()
	if err != nil {
		return nil, fmt.Errorf("%w: netlink: %w", ErrRSTFilter, err)
	}
	f := &rstFilter{conn: c}
	f.table = c.AddTable(&nftables.Table{
		Family: nftables.TableFamilyIPv4,
		Name:   fmt.Sprintf("statelab_tcp_%d_%d", os.Getpid(), rstTableSeq.Add(1)),
	})
	policy := nftables.ChainPolicyAccept
	f.chain = c.AddChain(&nftables.Chain{
		Name:     "out",
		Table:    f.table,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookOutput,
		Priority: nftables.ChainPriorityFilter,
		Policy:   &policy,
	})
	be16 := func(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
	c.AddRule(&nftables.Rule{
		Table: f.table,
		Chain: f.chain,
		Exprs: []expr.Any{
			&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_TCP}},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4},
			&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: addr[:]},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 0, Len: 2},
			&expr.Range{Op: expr.CmpOpEq, Register: 1, FromData: be16(lo), ToData: be16(hi)},
			&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: 13, Len: 1},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 1, Mask: []byte{byte(tcpstate.RST)}, Xor: []byte{0}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0}},
			&expr.Meta{Key: expr.MetaKeyMARK, Register: 1},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(mark)},
			&expr.Counter{},
			&expr.Verdict{Kind: expr.VerdictDrop},
		},
	})
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("%w: installing the OUTPUT rule (needs CAP_NET_ADMIN in this network namespace): %w", ErrRSTFilter, err)
	}
	return f, nil
}

// count returns how many RSTs the rule has dropped so far.
func (f *rstFilter) count() int64 {
	rules, err := f.conn.GetRules(f.table, f.chain)
	if err != nil {
		return -1
	}
	for _, r := range rules {
		for _, e := range r.Exprs {
			if c, ok := e.(*expr.Counter); ok {
				return int64(c.Packets)
			}
		}
	}
	return -1
}

func (f *rstFilter) remove() error {
	f.conn.DelTable(f.table)
	if err := f.conn.Flush(); err != nil {
		return fmt.Errorf("%w: removing table %s: %w", ErrRSTFilter, f.table.Name, err)
	}
	return nil
}
