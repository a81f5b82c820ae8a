package rawtcp

import (
	"context"
	"net"
	"net/netip"
	"os"
	"sort"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/statelab/statelab/tcpstate"
)

// BenchmarkKernelToLinkFloor: what receiving the kernel's bulk transfer
// costs a user-space receiver at the least, whatever its TCP does, on the
// two receive paths a rootless lab has. "raw": the link's raw socket, a
// read(2) per segment, as the lab runs; its one copy is the kernel's
// receiver's one copy (a read could land in a Read's buffer);
// "raw+recvmmsg" reads up to 64 segments per system call. "ring": a
// TPACKET_V2 receive ring on lo (a prototype, not safe for floods of
// small segments), every filled frame taken per wake-up, no system call
// each; "ring+copy" adds the copy from the frame into a Read's buffer that
// a ring's reader cannot avoid. A receiver with no engine, no Conn and no
// goroutine hand-off answers the kernel's SYN, counts in-order data on the
// reading goroutine and ACKs every second segment (a segment out of order
// at once) through the link's packet socket, with a 4 MiB window it never
// closes, `bench tcp`'s receive buffer. Each op is one transfer of
// floorSize kernel → floor and one kernel → kernel with no link open,
// alternating which goes first, each with the process's CPU time counted
// from before the dial until the receiver has the FIN; the metrics are
// the medians of the CPU-s/GiB and of their per-op ratio, the figure
// `bench tcp` compares with 1.2 for kernel→lab. Run it with
// -benchtime=Nx (each op moves 2 × 256 MiB).
func BenchmarkKernelToLinkFloor(b *testing.B) {
	for _, path := range floorPaths {
		b.Run(path.name, func(b *testing.B) { benchFloor(b, path.open, path.copy) })
	}
}

// openRawFloor is the link as the lab has it: the raw socket, read(2) per
// segment.
func openRawFloor(b testing.TB) (*Link, func(func(*frame)) error, func()) {
	l, err := OpenLink(LinkConfig{NetNS: netNS(b)})
	if err != nil {
		b.Fatal(err)
	}
	return l, l.receive, func() { l.Close() }
}

// openRawBatchFloor is the raw socket read with recvmmsg: every segment
// queued, up to 64, per system call.
func openRawBatchFloor(b testing.TB) (*Link, func(func(*frame)) error, func()) {
	l, err := OpenLink(LinkConfig{NetNS: netNS(b)})
	if err != nil {
		b.Fatal(err)
	}
	pc, err := net.FilePacketConn(l.file) // a second descriptor of the raw socket
	if err != nil {
		b.Fatal(err)
	}
	receive := func(deliver func(*frame)) error {
		c := ipv4.NewPacketConn(pc)
		msgs := make([]ipv4.Message, 64)
		for i := range msgs {
			msgs[i].Buffers = [][]byte{make([]byte, 1<<16)}
		}
		var fr frame
		for {
			n, err := c.ReadBatch(msgs, 0)
			if err != nil {
				return err
			}
			for _, m := range msgs[:n] {
				if parseIPv4(m.Buffers[0][:m.N], &fr) {
					deliver(&fr)
				}
			}
		}
	}
	return l, receive, func() {
		pc.Close()
		l.Close()
	}
}

// openRingFloor is a link without its raw socket that reads the kernel's
// segments from a TPACKET_V2 receive ring on lo (128 frames of 68 KiB,
// mmapped): every filled frame is taken per wake-up, no system call each.
// The kernel's TCP still sees the segments and its RSTs are dropped, as
// on the raw path.
func openRingFloor(b testing.TB) (*Link, func(func(*frame)) error, func()) {
	netNS(b)
	cfg := LinkConfig{}.WithDefaults()
	pkt, idx, err := openOffload()
	if err != nil {
		b.Fatal(err)
	}
	rst, err := installRSTFilter(cfg.Addr.As4(), cfg.PortMin, cfg.PortMax, cfg.Mark)
	if err != nil {
		b.Fatal(err)
	}
	l := &Link{cfg: cfg, addr: cfg.Addr.As4(), pkt: pkt, loIdx: idx, wbuf: make([]byte, 0, 65536), rst: rst}
	const frameSize, frames = 17 << 12, 128
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	must := func(what string, err error) {
		if err != nil {
			b.Fatalf("%s: %v", what, err)
		}
	}
	must("ignore outgoing", unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1))
	must("filter", unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, portFilter(cfg.PortMin, cfg.PortMax)))
	must("version", unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2))
	must("ring", unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_RX_RING,
		&unix.TpacketReq{Block_size: frameSize, Block_nr: frames, Frame_size: frameSize, Frame_nr: frames}))
	ring, err := unix.Mmap(fd, 0, frameSize*frames, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	must("mmap", err)
	must("bind", unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: 0x0300, Ifindex: idx})) // htons(ETH_P_ALL)
	f := os.NewFile(uintptr(fd), "ring")
	receive := func(deliver func(*frame)) error {
		defer unix.Munmap(ring)
		rc, err := f.SyscallConn()
		if err != nil {
			return err
		}
		var fr frame
		head := 0
		take := func(uintptr) bool {
			took := false
			for range frames {
				h := ring[head*frameSize : (head+1)*frameSize]
				hdr := (*unix.Tpacket2Hdr)(unsafe.Pointer(&h[0]))
				if atomic.LoadUint32(&hdr.Status)&unix.TP_STATUS_USER == 0 {
					break
				}
				if parseIPv4(h[hdr.Net:int(hdr.Net)+int(hdr.Snaplen)], &fr) {
					deliver(&fr)
				}
				atomic.StoreUint32(&hdr.Status, unix.TP_STATUS_KERNEL)
				head, took = (head+1)%frames, true
			}
			return took
		}
		for {
			if err := rc.Read(take); err != nil {
				return err
			}
		}
	}
	return l, receive, func() {
		f.Close()
		pkt.Close()
		releaseLocalnet()
		rst.remove()
	}
}

// floorOpen opens a link for one floor transfer: the link (for its
// address, ports and Send), the loop that reads it until it is closed, and
// its close.
type floorOpen func(testing.TB) (*Link, func(deliver func(*frame)) error, func())

// floorPaths are the receive paths the floor measures.
var floorPaths = []struct {
	name string
	open floorOpen
	copy bool
}{
	{"raw", openRawFloor, false},
	{"raw+recvmmsg", openRawBatchFloor, false},
	{"ring", openRingFloor, false},
	{"ring+copy", openRingFloor, true},
}

// floorSize is what each transfer of the benchmark moves.
const floorSize = 256 << 20

func benchFloor(b *testing.B, open floorOpen, copyOut bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var floor, kernel, ratio []float64
	rcv := &floorReceiver{}
	if copyOut {
		rcv.read = make([]byte, 1<<20)
	}
	for i := 0; b.Loop(); i++ {
		var f, k float64
		for side := range 2 {
			if (i+side)%2 == 1 {
				// The kernel's transfer with no link open, as in bench tcp.
				k = floorMeasure(b, floorSize, func() error { return floorKernelToKernel(ctx, floorSize) })
				continue
			}
			f = floorTransfer(ctx, b, open, rcv, uint16(i), floorSize)
		}
		floor, kernel, ratio = append(floor, f), append(kernel, k), append(ratio, f/k)
	}
	b.ReportMetric(median(floor), "floor-cpu-s/GiB")
	b.ReportMetric(median(kernel), "kernel-cpu-s/GiB")
	b.ReportMetric(median(ratio), "cpu-ratio")
	gib := float64(len(floor)) * floorSize / (1 << 30)
	b.ReportMetric(float64(rcv.segments)/gib, "segments/GiB")
	b.ReportMetric(float64(rcv.outOfOrder)/gib, "out-of-order/GiB")
	b.ReportMetric(float64(rcv.acks)/gib, "acks/GiB")
	b.ReportMetric(0, "ns/op")
}

// floorTransfer opens a link, has the kernel send size octets to rcv on
// the link's port PortMin+nth, closes the link and returns the process's
// CPU-s per GiB over the transfer. It fails tb unless rcv took all of it.
func floorTransfer(ctx context.Context, tb testing.TB, open floorOpen, rcv *floorReceiver, nth uint16, size int) float64 {
	l, receive, closeLink := open(tb)
	port := l.Config().PortMin + nth
	rcv.reset(l, port)
	read := make(chan struct{})
	go func() {
		defer close(read)
		_ = receive(rcv.deliver)
	}()
	f := floorMeasure(tb, size, func() error { return floorSend(ctx, netip.AddrPortFrom(l.Addr(), port), size, rcv.done) })
	closeLink()
	<-read
	if rcv.got != size {
		tb.Fatalf("the floor received %d of %d octets", rcv.got, size)
	}
	return f
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// floorMeasure runs f, one transfer of size octets, and returns the
// process's CPU-s (user and system, every thread) per GiB over it.
func floorMeasure(tb testing.TB, size int, f func() error) float64 {
	c0 := processCPU()
	if err := f(); err != nil {
		tb.Fatal(err)
	}
	return (processCPU() - c0).Seconds() / (float64(size) / (1 << 30))
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// floorSend is the kernel's writer: it dials to, writes size octets in
// 1 MiB writes, closes and waits for the receiver's done.
func floorSend(ctx context.Context, to netip.AddrPort, size int, done <-chan struct{}) error {
	var d net.Dialer
	k, err := d.DialContext(ctx, "tcp4", to.String())
	if err != nil {
		return err
	}
	defer k.Close()
	stop := context.AfterFunc(ctx, func() { k.Close() })
	defer stop()
	buf := make([]byte, 1<<20)
	for sent := 0; sent < size; sent += len(buf) {
		if _, err := k.Write(buf); err != nil {
			return err
		}
	}
	k.Close()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// floorKernelToKernel is `bench tcp`'s kernel→kernel: the same writer,
// and a kernel receiver reading 1 MiB at a time.
func floorKernelToKernel(ctx context.Context, size int) error {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 1<<20)
		for range size { // bounded: each read returns data, EOF or an error
			if _, err := c.Read(buf); err != nil { // io.EOF at the end
				return
			}
		}
	}()
	return floorSend(ctx, netip.MustParseAddrPort(ln.Addr().String()), size, done)
}

// floorReceiver is the least a receiver of one connection must do. It
// runs on the link's goroutine only; reset is called between transfers,
// when no segment is arriving.
type floorReceiver struct {
	l        *Link
	port     uint16
	peer     [4]byte
	peerPort uint16
	nxt      tcpstate.Seq
	unacked  int
	got      int
	ooo      map[tcpstate.Seq]int // out-of-order segments' lengths by sequence number
	read     []byte               // when set, in-order text is copied here, as into a Read's buffer
	readAt   int

	segments, outOfOrder, acks int // over every transfer
	done                       chan struct{}
	out                        tcpstate.Segment
}

const floorISS tcpstate.Seq = 1000

func (r *floorReceiver) reset(l *Link, port uint16) {
	r.l, r.port, r.got, r.unacked, r.done, r.ooo = l, port, 0, 0, make(chan struct{}), map[tcpstate.Seq]int{}
}

func (r *floorReceiver) deliver(f *frame) {
	s := &f.seg
	if s.DstPort != r.port || s.Flags&tcpstate.RST != 0 {
		return
	}
	if s.Flags&tcpstate.SYN != 0 {
		r.peer, r.peerPort, r.nxt = f.src, s.SrcPort, s.Seq.Add(1)
		r.send(tcpstate.SYN|tcpstate.ACK, floorISS, tcpstate.Options{MSS: 65495, HasWScale: true, WScale: 6})
		return
	}
	if n := len(s.Payload); n > 0 {
		r.segments++
		if s.Seq != r.nxt {
			// Out of order (lo reorders segments sent from two CPUs): its
			// place kept, not its text, and a duplicate ACK at once.
			if r.nxt.LessThan(s.Seq) && len(r.ooo) < 1024 {
				r.ooo[s.Seq] = n
			}
			r.unacked = 2
			r.outOfOrder++
		} else {
			r.nxt, r.got, r.unacked = r.nxt.Add(tcpstate.Size(n)), r.got+n, r.unacked+1
			if r.read != nil {
				r.copyOut(s.Payload)
			}
			for m, ok := r.ooo[r.nxt]; ok; m, ok = r.ooo[r.nxt] {
				delete(r.ooo, r.nxt)
				r.nxt, r.got, r.unacked = r.nxt.Add(tcpstate.Size(m)), r.got+m, 2
			}
		}
	}
	fin := s.Flags&tcpstate.FIN != 0 && s.Seq.Add(tcpstate.Size(len(s.Payload))) == r.nxt
	if fin {
		r.nxt = r.nxt.Add(1)
	}
	if r.unacked >= 2 || fin {
		r.send(tcpstate.ACK, floorISS+1, tcpstate.Options{})
		r.unacked = 0
	}
	if fin {
		close(r.done)
	}
}

// copyOut copies p into the read buffer, from where the last copy ended,
// wrapping: the copy a ring's reader makes from a frame into a Read's
// buffer, which the kernel's receiver and the raw socket's read(2) into
// that buffer do not make.
func (r *floorReceiver) copyOut(p []byte) {
	for len(p) > 0 {
		if r.readAt == len(r.read) {
			r.readAt = 0
		}
		n := copy(r.read[r.readAt:], p)
		r.readAt += n
		p = p[n:]
	}
}

func (r *floorReceiver) send(flags tcpstate.Flags, seq tcpstate.Seq, o tcpstate.Options) {
	r.out = tcpstate.Segment{SrcPort: r.port, DstPort: r.peerPort, Seq: seq, Ack: r.nxt, Flags: flags, Window: 65535, Options: o}
	_ = r.l.Send(&r.out, r.peer)
	r.acks++
}

// The floor's receivers take a whole transfer on every path, so the
// benchmark's figures are of transfers that happened (CI runs this, not
// the benchmark).
func TestFloorReceiversTakeAWholeTransfer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i, path := range floorPaths {
		t.Run(path.name, func(t *testing.T) {
			rcv := &floorReceiver{}
			if path.copy {
				rcv.read = make([]byte, 1<<20)
			}
			floorTransfer(ctx, t, path.open, rcv, uint16(i), 8<<20)
			if rcv.acks == 0 || rcv.segments == 0 {
				t.Errorf("%d segments, %d ACKs: not a transfer", rcv.segments, rcv.acks)
			}
		})
	}
}
