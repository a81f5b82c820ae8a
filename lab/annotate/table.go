package annotate

// Type is a field's type in Wireshark.
type Type int

// The types of fields.
const (
	// String is free text: a state's name, a reason, an address.
	String Type = iota
	// Uint16 is an unsigned number below 2^16 (a DNS ID).
	Uint16
	// Uint32 is an unsigned number below 2^32 (sequence numbers, windows,
	// counts), an integer field Wireshark can filter with < and plot.
	Uint32
	// Uint64 is an unsigned number below 2^64 (QUIC packet numbers).
	Uint64
)

// String names the type as the generated plugin's ProtoField constructor.
func (t Type) String() string {
	switch t {
	case String:
		return "string"
	case Uint16:
		return "uint16"
	case Uint32:
		return "uint32"
	case Uint64:
		return "uint64"
	}
	return "unknown"
}

// Key is a field's name: the key in a block, statelab.KEY in Wireshark.
type Key string

// The fields' keys. Table says what each means.
const (
	Side        Key = "side"
	Note        Key = "note"
	LabState    Key = "lab_state"
	KernelState Key = "kernel_state"
	SndUna      Key = "snd_una"
	SndNxt      Key = "snd_nxt"
	SndWnd      Key = "snd_wnd"
	RcvNxt      Key = "rcv_nxt"
	RcvWnd      Key = "rcv_wnd"
	Cwnd        Key = "cwnd"
	Ssthresh    Key = "ssthresh"
	Conn        Key = "conn"
	Kind        Key = "kind"
	Query       Key = "query"
	Attempt     Key = "attempt"
	QueryID     Key = "query_id"
	Verdict     Key = "verdict"
	Reason      Key = "reason"
	Path        Key = "path"
	DCID        Key = "dcid"
	PN          Key = "pn"
	Event       Key = "event"
	Mode        Key = "mode"
	Step        Key = "step"
	Backend     Key = "backend"
	Session     Key = "session"
)

// Field is one field of the block.
type Field struct {
	Key   Key
	Type  Type
	Hex   bool   // shown in hexadecimal (a DNS ID)
	Title string // Wireshark's label for it
	Group string // the experiments that write it: all, tcp, dns, quic, http
	Doc   string // what it means, Wireshark's blurb
}

// Table is every field a block may carry, in the order the plugin shows
// them.
var Table = []Field{
	{Side, String, false, "Side", "all", "who sent this packet: lab or kernel (tcp); client, server, forger, prober or kernel (dns); client, server, attacker, nat, prober (a hand-built Initial), balancer or backend N (quic, the nat also for the contrast's TCP); client, server, balancer or backend (http); on http/store-failover's Redis legs a server's role at that moment (primary, replica, …), sentinel or observer; other for a packet of none of them"},
	{Note, String, false, "Note", "all", "a short note on the packet: what the lab did to it (held back, dropped before it) or what it is"},
	{LabState, String, false, "Lab state", "tcp", "the lab's TCP state: on a lab segment the state it sent it in, on a kernel segment the state after the lab processed it"},
	{KernelState, String, false, "Kernel state", "tcp", "the kernel's TCP state, derived from the segments in capture order (or read right after the segment where the experiment says so)"},
	{SndUna, Uint32, false, "SND.UNA", "tcp", "the lab's oldest unacknowledged sequence number, relative to its ISS as Wireshark numbers it"},
	{SndNxt, Uint32, false, "SND.NXT", "tcp", "the lab's next sequence number to send, relative to its ISS"},
	{SndWnd, Uint32, false, "SND.WND", "tcp", "the send window the lab has from the kernel, in bytes (scaled)"},
	{RcvNxt, Uint32, false, "RCV.NXT", "tcp", "the next sequence number the lab expects from the kernel, relative to the kernel's ISS; absent before the kernel's SYN is known"},
	{RcvWnd, Uint32, false, "RCV.WND", "tcp", "the lab's receive window, in bytes"},
	{Cwnd, Uint32, false, "cwnd", "tcp", "the lab's congestion window, in bytes"},
	{Ssthresh, Uint32, false, "ssthresh", "tcp", "the lab's slow-start threshold, in bytes"},
	{Conn, Uint32, false, "Connection", "tcp http", "the connection's number in the capture (tcp from 0, http per server from 1)"},
	{Kind, String, false, "Kind", "dns quic http", "what the packet is: query, answer, forged, probe, icmp, tcp (dns); tcp (quic's contrast); request, response, segment (http); redis (http/store-failover's Redis and Sentinel legs)"},
	{Query, Uint32, false, "Query", "dns", "the client's query number, from 0"},
	{Attempt, Uint32, false, "Attempt", "dns", "the attempt of the query this datagram is, from 1"},
	{QueryID, Uint16, true, "Query ID", "dns", "the DNS message ID of the datagram"},
	{Verdict, String, false, "Verdict", "dns quic", "what the receiver made of the packet: matched, late, duplicate, rejected, truncated, not read (dns); received, dropped, not logged (quic)"},
	{Reason, String, false, "Reason", "dns quic", "why the receiver rejected or dropped it: wrong ID, wrong question, wrong source, not a response (dns); the qlog's drop reason (quic)"},
	{Path, String, false, "Path", "quic", "the 4-tuple the sender says it sent the datagram on, local → remote, as its qlog logged it"},
	{DCID, String, false, "DCID", "quic", "the destination connection ID of the datagram's packets, hexadecimal"},
	{PN, Uint64, false, "Packet number", "quic", "the packet number of each QUIC packet in the datagram, as the sender logged it (one per coalesced packet)"},
	{Event, String, false, "Event", "quic", "what happens on the path at this datagram: PATH_CHALLENGE, PATH_RESPONSE, rebinding, old path, after switch, dropped by the NAT, forged copy, original of a forged copy, Retry, hand-built Initial, stateless reset"},
	{Mode, String, false, "Mode", "http", "the server or balancer the exchange is with: stateless, stateful, store-backed, a balancer and its policy"},
	{Step, Uint32, false, "Step", "http", "the workflow's step or request number, from 1"},
	{Backend, String, false, "Backend", "http", "the backend that served the request behind a balancer"},
	{Session, String, false, "Session", "http", "the server's session state after this request, as the server reported it"},
}

// Lookup returns the field of key k.
func Lookup(k Key) (Field, bool) {
	for _, f := range Table {
		if f.Key == k {
			return f, true
		}
	}
	return Field{}, false
}
