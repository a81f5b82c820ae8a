package capture

import (
	"encoding/binary"
	"net/netip"
	"time"
)

// Packet is one frame seen on the loopback, as the kernel delivered it
// (Ethernet framing with zero addresses, as libpcap records lo).
type Packet struct {
	Time     time.Time
	Data     []byte
	Comments []string
}

// Comment attaches a comment that Wireshark shows as frame.comment.
func (p *Packet) Comment(s string) { p.Comments = append(p.Comments, s) }

// Proto numbers used by Meta.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// TCP flag bits as they appear in Meta.Flags.
const (
	FlagFIN = 1 << iota
	FlagSYN
	FlagRST
	FlagPSH
	FlagACK
	FlagURG
)

// Meta is the part of a packet experiments usually need, decoded without
// allocation. Payload aliases the packet's data.
type Meta struct {
	Src, Dst netip.AddrPort
	Proto    uint8
	// TCP only.
	Seq, Ack uint32
	Flags    uint8
	Window   uint16
	Payload  []byte
}

// Decode returns the packet's addresses, ports and transport payload. ok is
// false for anything that is not a well-formed IPv4/IPv6 packet; ports are
// zero for protocols without them. It never panics on any input.
func (p *Packet) Decode() (m Meta, ok bool) { return DecodeFrame(p.Data) }

// DecodeFrame decodes an Ethernet-framed IPv4 or IPv6 packet; see Packet.Decode.
func DecodeFrame(b []byte) (m Meta, ok bool) {
	if len(b) < 14 {
		return m, false
	}
	etype := binary.BigEndian.Uint16(b[12:14])
	b = b[14:]
	var src, dst netip.Addr
	var l4 []byte
	switch etype {
	case 0x0800:
		if len(b) < 20 || b[0]>>4 != 4 {
			return m, false
		}
		ihl := int(b[0]&0x0f) * 4
		total := int(binary.BigEndian.Uint16(b[2:4]))
		if ihl < 20 || total < ihl || total > len(b) {
			return m, false
		}
		src = netip.AddrFrom4([4]byte(b[12:16]))
		dst = netip.AddrFrom4([4]byte(b[16:20]))
		m.Proto = b[9]
		l4 = b[ihl:total]
	case 0x86dd:
		if len(b) < 40 || b[0]>>4 != 6 {
			return m, false
		}
		plen := int(binary.BigEndian.Uint16(b[4:6]))
		if 40+plen > len(b) {
			return m, false
		}
		src = netip.AddrFrom16([16]byte(b[8:24]))
		dst = netip.AddrFrom16([16]byte(b[24:40]))
		m.Proto = b[6]
		l4 = b[40 : 40+plen]
	default:
		return m, false
	}
	var sport, dport uint16
	switch m.Proto {
	case ProtoTCP:
		if len(l4) < 20 {
			return m, false
		}
		off := int(l4[12]>>4) * 4
		if off < 20 || off > len(l4) {
			return m, false
		}
		sport, dport = binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
		m.Seq = binary.BigEndian.Uint32(l4[4:8])
		m.Ack = binary.BigEndian.Uint32(l4[8:12])
		m.Flags = l4[13] & 0x3f
		m.Window = binary.BigEndian.Uint16(l4[14:16])
		m.Payload = l4[off:]
	case ProtoUDP:
		if len(l4) < 8 {
			return m, false
		}
		sport, dport = binary.BigEndian.Uint16(l4[0:2]), binary.BigEndian.Uint16(l4[2:4])
		m.Payload = l4[8:]
	default:
		m.Payload = l4
	}
	m.Src = netip.AddrPortFrom(src, sport)
	m.Dst = netip.AddrPortFrom(dst, dport)
	return m, true
}

// Involves reports whether either endpoint of the packet uses port.
func (m Meta) Involves(port uint16) bool { return m.Src.Port() == port || m.Dst.Port() == port }
