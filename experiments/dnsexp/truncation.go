package dnsexp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/annotate"
	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/udpdns"
)

// truncation is dns/truncation: the EDNS0 buffer the client advertises
// (the DNS Flag Day 2020 size: the big answer does not fit it), the small
// name whose answer does, and the client's timeout.
var truncation = struct {
	udpSize   uint16
	smallName string
	timeout   time.Duration
}{udpSize: 1232, smallName: "example.lab.", timeout: 2 * time.Second}

func runTruncation(env *lab.Env) error {
	// Set up: the built-in zone over UDP and TCP, reporting each TCP
	// connection's close; the rig (counting the kernel's TCP segments).
	closed := make(chan time.Duration, 4)
	srv, err := udpdns.StartServer(udpdns.ServerConfig{Addr: labServerAddr, Handler: udpdns.BuiltinZone(), TCP: true,
		OnTCPClose: func(_ netip.AddrPort, held time.Duration) {
			select {
			case closed <- held:
			default:
			}
		}})
	if err != nil {
		return err
	}
	env.Cleanup(func() { srv.Close() })
	r, err := newRig(env, srv.Addr(), rigConfig{timeout: truncation.timeout, udpSize: truncation.udpSize, tcpFallback: true, tcp: true})
	if err != nil {
		return err
	}
	// Drive: a small answer over UDP alone, then the big one: truncated
	// over UDP, retried over TCP; wait for the server to close its end.
	small, errSmall := r.askTXT(truncation.smallName)
	big, errBig := r.askTXT(udpdns.BigName)
	var held time.Duration
	if errBig == nil {
		select {
		case held = <-closed:
		case <-time.After(5 * time.Second):
		case <-env.Ctx.Done():
			return env.Ctx.Err()
		}
	}
	// Collect: the server's counts are final once it is closed.
	srv.Close()
	sst := srv.Stats()
	udpWritten := int(sst.Written - sst.WrittenTCP)
	pkts, st, err := r.collect(udpWritten, fmt.Sprintf("the server (%d UDP answers written)", udpWritten), 0)
	if err != nil {
		return err
	}
	env.Check("the small answer came over UDP alone", errSmall == nil && small != nil && !small.Truncated && len(small.Answer) == 1,
		"%s TXT: %v, error: %s", truncation.smallName, brief1(small), lab.ErrText(errSmall))
	env.Check("the big answer came whole, over TCP", errBig == nil && big != nil && !big.Truncated && len(big.Answer) == udpdns.BigTXTRecords,
		"%s TXT: %v, error: %s; want %d records", udpdns.BigName, brief1(big), lab.ErrText(errBig), udpdns.BigTXTRecords)
	env.Check("the client saw TC and retried over TCP once", st.Truncated == 1 && st.TCPSent == 1 && st.TCPAnswered == 1, "%s", st)
	env.Check("the server held one TCP connection, for the exchange only", sst.TCPConns == 1 && sst.TCPOpen() == 0 && held > 0,
		"%d connections accepted, %d open after the exchange, held %v (accept to close)", sst.TCPConns, sst.TCPOpen(), held.Round(time.Microsecond))
	env.Check("counters balance: sent = matched + lost + in flight", st.Consistent() && st.InFlight == 0, "%s", st)
	w := readTruncation(pkts, r.server, truncation.udpSize)
	commentRest(pkts)
	w.report(env, held)
	return nil
}

// askTXT asks name TXT, its IDs from the name's own stream.
func (r *rig) askTXT(name string) (*dns.Msg, error) {
	m := new(dns.Msg)
	m.SetQuestion(name, dns.TypeTXT)
	return r.cl.ExchangeRand(r.env.Ctx, m, queryRand(r.env, name))
}

// brief1 says what an answer held.
func brief1(m *dns.Msg) string {
	if m == nil {
		return "no answer"
	}
	return fmt.Sprintf("%s, %d records, TC=%v", dns.RcodeToString[m.Rcode], len(m.Answer), m.Truncated)
}

// exchangeCost is what one part of the exchange cost on the wire, from
// the capture: packets, whole frames' bytes, and its first and last
// packet's times.
type exchangeCost struct {
	packets, bytes int
	first, last    time.Time
}

func (c *exchangeCost) add(p *capture.Packet) {
	if c.packets == 0 {
		c.first = p.Time
	}
	c.packets++
	c.bytes += len(p.Data)
	c.last = p.Time
}

func (c exchangeCost) span() time.Duration { return c.last.Sub(c.first) }

// truncWire is what the capture of dns/truncation shows.
type truncWire struct {
	small, bigUDP, tcp exchangeCost
	// bigTC: the big answer over UDP had TC set; its size and records.
	bigTC                  bool
	bigUDPSize, bigRecords int
	// tcpRecords: records in the answer read over TCP; tcpAnswerTC its TC.
	tcpRecords  int
	tcpAnswerTC bool
	// what the TCP connection showed, in order.
	syn, synAck, handshakeAck, query, answer, clientFin, serverFin bool
	// serverHeld: from the server's SYN-ACK to its FIN, as captured.
	serverHeld time.Duration
	ladder     []lab.Rung
}

// tcpPhase names the connection's state for a segment's comment.
type tcpPhase struct {
	client netip.AddrPort // the client's end, from its SYN
	w      *truncWire
	synAck time.Time
}

// readTruncation comments every datagram and segment with what it is and
// each side's state at its moment, measures the UDP-only exchange, the
// truncated UDP attempt and the TCP exchange, and draws the ladder.
func readTruncation(pkts []*capture.Packet, server netip.AddrPort, udpSize uint16) truncWire {
	var w truncWire
	var lad lab.Ladder
	ph := tcpPhase{w: &w}
	for _, p := range pkts {
		m, ok := p.Decode()
		if !ok {
			continue
		}
		switch m.Proto {
		case capture.ProtoUDP:
			d, ok := dnsPacket(p)
			if !ok {
				continue
			}
			big := d.name() == udpdns.BigName
			cost := &w.small
			if big {
				cost = &w.bigUDP
			}
			cost.add(p)
			if !d.head.Response() {
				p.Comment(annotate.Append(fmt.Sprintf("query over UDP: %s, advertising a %d-byte EDNS buffer; server: keeps nothing for this client", d.question(), udpSize),
					dnsBlock("client", "query", d.head.ID)))
				lad.Send(d.question()+" (UDP)", "waits for the answer", "")
				continue
			}
			recs, tc := 0, false
			if d.msg != nil {
				recs, tc = len(d.msg.Answer), d.msg.Truncated
			}
			if big {
				w.bigTC, w.bigUDPSize, w.bigRecords = tc, len(m.Payload), recs
			}
			if tc {
				p.Comment(annotate.Append(fmt.Sprintf("answer over UDP with TC set: %d of %d records in %d bytes (the buffer allows %d); client: truncated, retries over TCP; server: done, keeps nothing",
					recs, udpdns.BigTXTRecords, len(m.Payload), udpSize), dnsBlock("server", "answer", d.head.ID).Str(annotate.Verdict, "truncated")))
				lad.Reply(fmt.Sprintf("TC: %d records, %d bytes", recs, len(m.Payload)), "truncated: retry over TCP", "forgets the query")
			} else {
				p.Comment(annotate.Append(fmt.Sprintf("answer over UDP: %s, %d records in %d bytes, TC clear; client: matched, done; server: keeps nothing", d.question(), recs, len(m.Payload)),
					dnsBlock("server", "answer", d.head.ID).Str(annotate.Verdict, "matched")))
				lad.Reply(fmt.Sprintf("%d record(s), %d bytes", recs, len(m.Payload)), "matched", "keeps nothing")
			}
		case capture.ProtoTCP:
			w.tcp.add(p)
			c, rung := ph.segment(p, m, server)
			side := "client"
			if m.Src == server {
				side = "server"
			}
			p.Comment(annotate.Append(c, annotate.Block{}.Str(annotate.Side, side).Str(annotate.Kind, "tcp")))
			if rung != nil {
				lad.Rows = append(lad.Rows, *rung)
			}
		}
	}
	w.ladder = lad.Rows
	return w
}

// segment comments one TCP segment of the fallback connection with what
// it is and each side's state after it, and gives its ladder rung (nil for
// plain ACKs).
func (ph *tcpPhase) segment(p *capture.Packet, m capture.Meta, server netip.AddrPort) (string, *lab.Rung) {
	w := ph.w
	fromClient := m.Dst == server
	syn, ack, fin := m.Flags&capture.FlagSYN != 0, m.Flags&capture.FlagACK != 0, m.Flags&capture.FlagFIN != 0
	rung := func(label, client, srv string) *lab.Rung {
		return &lab.Rung{ToRight: fromClient, Label: label, LeftState: client, RightState: srv}
	}
	switch {
	case syn && !ack:
		w.syn, ph.client = true, m.Src
		return fmt.Sprintf("SYN %v → %v: the client opens a TCP connection to ask again; client SYN-SENT; server: LISTEN, about to hold state for this client", m.Src, m.Dst),
			rung("SYN", "SYN-SENT", "")
	case syn && ack:
		w.synAck, ph.synAck = true, p.Time
		return "SYN-ACK: the server's kernel holds a half-open connection for this client (SYN-RECEIVED)", rung("SYN-ACK", "", "SYN-RECEIVED")
	case fin && fromClient:
		w.clientFin = true
		return "FIN from the client: it has its answer and closes; client FIN-WAIT-1; server CLOSE-WAIT until it reads the end",
			rung("FIN", "FIN-WAIT", "CLOSE-WAIT")
	case fin:
		w.serverFin = true
		if !ph.synAck.IsZero() {
			w.serverHeld = p.Time.Sub(ph.synAck)
		}
		return fmt.Sprintf("FIN from the server: it read the end of the stream and closed (LAST-ACK), %v after its SYN-ACK; client TIME-WAIT next",
			w.serverHeld.Round(time.Microsecond)), rung("FIN", "TIME-WAIT", "LAST-ACK")
	case len(m.Payload) > 0 && fromClient:
		w.query = true
		return "the query over TCP: " + tcpDNS(m.Payload) + "; client: waits for the answer on this connection; server: ESTABLISHED, reading",
			rung("query over TCP "+tcpDNS(m.Payload), "ESTABLISHED", "ESTABLISHED")
	case len(m.Payload) > 0:
		w.answer = true
		if r := tcpMsg(m.Payload); r != nil {
			w.tcpRecords, w.tcpAnswerTC = len(r.Answer), r.Truncated
		}
		return fmt.Sprintf("the answer over TCP: %s; %d records, TC=%v; server: the connection stays open until the client closes", tcpDNS(m.Payload), w.tcpRecords, w.tcpAnswerTC),
			rung(fmt.Sprintf("answer over TCP: %d records", w.tcpRecords), "matched", "ESTABLISHED")
	case fromClient && !w.handshakeAck:
		w.handshakeAck = true
		return "ACK: the handshake is done; both ends ESTABLISHED — the server now holds a connection (socket, buffers, a goroutine) for this client", nil
	case fromClient && w.serverFin:
		return "the client's last ACK: the server's end is CLOSED, nothing kept; the client's stays in TIME-WAIT (its state, not the server's)", nil
	case fromClient:
		return "ACK from the client: it has the answer's bytes", nil
	case w.clientFin:
		return "ACK of the client's FIN from the server's kernel (CLOSE-WAIT until the server closes)", nil
	default:
		return "ACK from the server's kernel: it has the query's bytes", nil
	}
}

// tcpDNS renders a DNS message framed for TCP (two-byte length first).
func tcpDNS(b []byte) string {
	if len(b) < 2 {
		return "part of a message"
	}
	n := int(binary.BigEndian.Uint16(b))
	h, err := udpdns.ParseHead(b[2:])
	if err != nil {
		return fmt.Sprintf("%d-byte message (length prefix %d)", len(b)-2, n)
	}
	name := h.Name()
	return fmt.Sprintf("2-byte length %d + id=%#04x %s %s", n, h.ID, name, dns.TypeToString[h.QType])
}

// tcpMsg unpacks a DNS message framed for TCP, or nil.
func tcpMsg(b []byte) *dns.Msg {
	if len(b) < 2 || int(binary.BigEndian.Uint16(b)) != len(b)-2 {
		return nil
	}
	m := new(dns.Msg)
	if m.Unpack(b[2:]) != nil {
		return nil
	}
	return m
}

// complete: the connection as captured had every step.
func (w truncWire) complete() bool {
	return w.syn && w.synAck && w.handshakeAck && w.query && w.answer && w.clientFin && w.serverFin
}

// roundTrips counts the round trips each way took, from the capture: one
// for a UDP exchange; the truncated path adds the handshake's and the TCP
// query's.
func (w truncWire) roundTrips() (udpOnly, truncated int) {
	if w.small.packets >= 2 {
		udpOnly = 1
	}
	if w.bigUDP.packets >= 2 {
		truncated++
	}
	if w.syn && w.synAck {
		truncated++
	}
	if w.query && w.answer {
		truncated++
	}
	return udpOnly, truncated
}

// report records the wire's checks, the ladder, metrics and the holding
// row.
func (w truncWire) report(env *lab.Env, held time.Duration) {
	lad := capturedLadder(env, fmt.Sprintf("a small answer over UDP, then one too big for a %d-byte buffer: TC, and TCP, as captured", truncation.udpSize), "client", "server")
	lad.Rows = w.ladder
	env.Check("the big answer over UDP was truncated within the client's buffer", w.bigTC && w.bigUDPSize <= int(truncation.udpSize) && w.bigRecords < udpdns.BigTXTRecords,
		"TC=%v, %d bytes (buffer %d), %d of %d records", w.bigTC, w.bigUDPSize, truncation.udpSize, w.bigRecords, udpdns.BigTXTRecords)
	env.Check("the TCP exchange as captured: SYN, SYN-ACK, ACK, query, answer, FIN each way", w.complete() && w.tcpRecords == udpdns.BigTXTRecords && !w.tcpAnswerTC,
		"SYN %v, SYN-ACK %v, ACK %v, query %v, answer %v (%d records, TC=%v), client FIN %v, server FIN %v",
		w.syn, w.synAck, w.handshakeAck, w.query, w.answer, w.tcpRecords, w.tcpAnswerTC, w.clientFin, w.serverFin)
	udpRT, truncRT := w.roundTrips()
	env.Table("what each answer cost on the wire (whole frames, from the capture)", [][]string{
		{"exchange", "packets", "bytes", "round trips", "time"},
		{truncation.smallName + " TXT over UDP", fmt.Sprint(w.small.packets), fmt.Sprint(w.small.bytes), fmt.Sprint(udpRT), w.small.span().Round(time.Microsecond).String()},
		{udpdns.BigName + " TXT over UDP (TC)", fmt.Sprint(w.bigUDP.packets), fmt.Sprint(w.bigUDP.bytes), "1", w.bigUDP.span().Round(time.Microsecond).String()},
		{udpdns.BigName + " TXT over TCP", fmt.Sprint(w.tcp.packets), fmt.Sprint(w.tcp.bytes), fmt.Sprint(truncRT - 1), w.tcp.span().Round(time.Microsecond).String()},
	})
	env.Metric("udp_only_packets_count", float64(w.small.packets))
	env.Metric("udp_only_bytes", float64(w.small.bytes))
	env.Metric("truncated_udp_bytes", float64(w.bigUDP.bytes))
	env.Metric("tcp_packets_count", float64(w.tcp.packets))
	env.Metric("tcp_bytes", float64(w.tcp.bytes))
	env.Metric("round_trips_udp_only_count", float64(udpRT))
	env.Metric("round_trips_truncated_count", float64(truncRT))
	env.Metric("server_tcp_held_ms", float64(held.Microseconds())/1000)
	env.Metric("server_tcp_held_captured_ms", float64(w.serverHeld.Microseconds())/1000)
	env.Note("over UDP the server answers and forgets; the answer too big for the client's buffer turns the exchange into a connection: "+
		"the server's kernel held it from SYN-ACK to FIN for %v as captured (%v from accept to close by the server's count), and the client's end stays in TIME-WAIT after",
		w.serverHeld.Round(time.Microsecond), held.Round(time.Microsecond))
	env.Holding(lab.Holding{
		ServerKeeps: fmt.Sprintf("nothing over UDP; a TCP connection (%.2f ms from accept to close) once the answer is too big", float64(held.Microseconds())/1000),
		ClientCarries: fmt.Sprintf("the query ID and question; for the big answer the query again over TCP, and the connection's end (TIME-WAIT) after it: %d packets instead of %d",
			w.bigUDP.packets+w.tcp.packets, w.small.packets),
		RestartLoses: "not restarted",
		CarriedBytes: w.bigUDP.bytes + w.tcp.bytes,
		CarriedPer:   fmt.Sprintf("per query whose answer is too big (UDP attempt + TCP exchange, against %d for a UDP-only answer)", w.small.bytes),
	})
}
