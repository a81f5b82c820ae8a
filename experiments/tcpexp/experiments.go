package tcpexp

import "github.com/statelab/statelab/lab"

// Experiments returns the tcp/ experiments, for a lab.Catalogue.
func Experiments() []lab.Experiment {
	return []lab.Experiment{
		{
			Name:    "tcp/close",
			Summary: "active close (FIN-WAIT-1, FIN-WAIT-2, TIME-WAIT) and passive close (CLOSE-WAIT, LAST-ACK) against the kernel",
			Shows: "The lab's engine closes a connection with the kernel first (FIN-WAIT-1 → FIN-WAIT-2 → TIME-WAIT → CLOSED " +
				"after 2×MSL) and second (CLOSE-WAIT → LAST-ACK → CLOSED), the kernel's state beside each segment as the segments show it.",
			Run: runClose,
		},
		{
			Name:    "tcp/handshake",
			Summary: "the user-space engine opens connections with the Linux kernel: active (SYN-SENT) and passive (LISTEN, SYN-RECEIVED)",
			Shows: "The lab's RFC 9293 engine, on raw sockets, completes the three-way handshake with the kernel's TCP in both " +
				"directions: it connects to a kernel listener (SYN-SENT → ESTABLISHED) and accepts a kernel connect() " +
				"(LISTEN → SYN-RECEIVED → ESTABLISHED), every segment commented with the lab's TCB.",
			Run: runHandshake,
		},
		{
			Name:    "tcp/keepalive",
			Summary: "keep-alive both ways: the lab's probes find a kernel silenced by the link and the user timeout ends it; the kernel's SO_KEEPALIVE probes the lab",
			Shows: "An idle lab connection with keep-alive (RFC 1122 §4.2.3.6) and a user timeout (RFC 5482) probes the kernel with " +
				"<SEQ=SND.UNA-1> and is answered; then the lab's link drops every kernel segment, the probes go unanswered and the " +
				"user timeout, counted from when the kernel was last heard, ends the connection with a RST (ETIMEDOUT for the lab's " +
				"user, ECONNRESET for the kernel's); with data outstanding to the silenced kernel, the user timeout (not MaxRetries) " +
				"ends the retransmissions, without a RST; a kernel socket with SO_KEEPALIVE and short TCP_KEEPIDLE/INTVL/CNT probes the " +
				"idle lab, whose engine answers each probe, and the connection stays up.",
			Run: runKeepAlive,
		},
		{
			Name:    "tcp/nagle-delayed-ack",
			Summary: "the write-write-read stall: Nagle at one end and delayed ACK at the other, both ways with the kernel; TCP_NODELAY removes it",
			Shows: "A client writes a small header, then a small body, then waits for the response. With Nagle on the body " +
				"waits for the ACK of the header, and the server, with no response to send yet, delays that ACK: each round " +
				"waits for the delayed-ACK timer. Shown both ways — the lab's Nagle against the kernel's delayed ACK, the " +
				"kernel's Nagle against the lab's (after the lab's quick-ACK mode ends) — and removed by TCP_NODELAY on " +
				"the kernel's socket or the lab's SetNoDelay; every wait measured from the lab's records.",
			Run: runNagleDelayedACK,
		},
		{
			Name:    "tcp/reset",
			Summary: "RSTs between the engine and the kernel: connection refused, and RFC 5961 on an exact, an in-window and an out-of-window RST",
			Shows: "A SYN to a closed kernel port is refused with RST (SYN-SENT → CLOSED); a RST exactly at the kernel's " +
				"RCV.NXT aborts its connection (ECONNRESET), one elsewhere in the window draws an RFC 5961 challenge ACK, " +
				"and one outside the window is dropped without a word — written as Go probe tables.",
			Run: runReset,
		},
		{
			Name:    "tcp/retransmit",
			Summary: "lost and reordered segments between the engine and the kernel: RTO with backoff, the kernel's retransmission, fast retransmit",
			Shows: "The link drops a lab segment twice and the engine retransmits it after one RTO and then after twice that " +
				"(RFC 6298 backoff); a withheld lab ACK makes the kernel retransmit; a segment held back on the link " +
				"reaches the kernel out of order, the kernel answers with duplicate ACKs and the third triggers the " +
				"engine's fast retransmit (RFC 5681).",
			Run: runRetransmit,
		},
		{
			Name:    "tcp/sack",
			Summary: "SACK (RFC 2018) both ways with the kernel: SACK blocks on the wire, the lab's RFC 6675 recovery, bytes resent with SACK and without (NewReno)",
			Shows: "A ten-segment burst loses its 7th and 9th segments on the lab's link, in each direction, with SACK " +
				"negotiated and without. The receiver's duplicate ACKs carry SACK blocks (the kernel's to the lab, the lab's to " +
				"the kernel); two are too few for fast retransmit, so the lab's retransmission timer fires and its go-back-N skips " +
				"what the kernel SACKed — two segments resent, where NewReno resends the 10th as well; the kernel resends no " +
				"octet the lab had SACKed. When the 3rd and 5th are lost, the lab's RFC 6675 recovery resends both holes in " +
				"one round trip, NewReno the second only after the partial ACK. Every transfer is compared byte for byte.",
			Run: runSACK,
		},
		{
			Name:    "tcp/simultaneous",
			Summary: "simultaneous open (SYN-SENT → SYN-RECEIVED) and simultaneous close (CLOSING) with a kernel socket",
			Shows: "Both SYNs cross: the lab's SYN is held on the link until the kernel's connect() SYN has arrived, so the " +
				"lab goes SYN-SENT → SYN-RECEIVED → ESTABLISHED; then both FINs cross and the lab goes FIN-WAIT-1 → " +
				"CLOSING → TIME-WAIT.",
			Run: runSimultaneous,
		},
		{
			Name:    "tcp/state-loss",
			Summary: "one side forgets the connection: the lab crashes (kernel gets ECONNRESET), the kernel aborts (lab goes CLOSED)",
			Shows: "TCP state lives only in the two endpoints: when the lab forgets its TCB (a crash and restart), the " +
				"kernel's next segment meets a CLOSED endpoint, is answered with RST and the kernel socket reports " +
				"ECONNRESET; when the kernel aborts (SO_LINGER 0) its RST takes the lab from ESTABLISHED to CLOSED.",
			Run: runStateLoss,
		},
		{
			Name:       "tcp/syn-cookies",
			HoldsState: true, // a row of who holds the state
			Summary:    "a stateless server inside TCP: a full SYN queue, SYN cookies, no SYN-RECEIVED socket until the final ACK; what the cookie forgets",
			Shows: "A kernel listener with backlog 1 answers the SYNs it has no room for with SYN cookies (tcp_syncookies=1), " +
				"or every SYN (=2): the SYN-ACK's ISN encodes the connection and sock_diag finds no request socket until the " +
				"lab's final ACK brings the cookie back and the socket is built ESTABLISHED; an ACK one off is refused " +
				"(SyncookiesFailed); without timestamps the kernel forgets window scale and SACK and rounds the MSS down, with " +
				"them TSval's low bits carry both.",
			Run: runSynCookies,
		},
		{
			Name:    "tcp/timestamps",
			Summary: "timestamps (RFC 7323) with the kernel: TSval/TSecr both ways, the lab's RTT samples from TSecr, an old duplicate refused by PAWS on each side",
			Shows: "The lab and the kernel negotiate timestamps and every segment carries TSval/TSecr, each side echoing the " +
				"other's; the lab takes an RTT sample from the TSecr of each ACK of its data (RFC 6298). Then an old duplicate " +
				"each way — at the receiver's next expected sequence number, with a TSval older than its TS.Recent — is refused " +
				"by PAWS: the kernel answers with a duplicate ACK and counts it (TcpExt PAWSEstab), the lab answers with an ACK " +
				"and counts it; neither reads its bytes.",
			Run: runTimestamps,
		},
		{
			Name:    "tcp/transfer",
			Summary: "200 KiB each way between the engine and the kernel, the lab's sequence numbers wrapping past 2^32",
			Shows: "Data flows both ways between the lab's engine and the kernel with SEQ and ACK tracked on every segment; " +
				"the lab's ISN sits just below 2^32 so its sequence numbers wrap mid-transfer, and both sides (and the " +
				"capture) hold the same bytes by SHA-256.",
			Run: runTransfer,
		},
		{
			Name:    "tcp/window",
			Summary: "a kernel receiver with a small buffer stops reading: zero window, the engine's persist probes, the window reopening",
			Shows: "A kernel socket with a small receive buffer that stops reading closes its window to zero; the lab's " +
				"engine stops sending and probes the window on its persist timer with backoff, and resumes when the " +
				"kernel reads and reopens the window; every byte arrives.",
			Run: runWindow,
		},
	}
}

// Summaries returns the tcp group's summaries, for a lab.Catalogue.
func Summaries() []lab.Summary {
	return []lab.Summary{{
		Group: "tcp",
		Shows: "Across the tcp experiments the lab's engine, talking to the kernel's TCP, goes through all 11 states of RFC 9293; the tables say which experiment reached which state and exercised which TCP feature.",
		Build: tcpAcrossCatalogue,
	}}
}

// experiment finds one of the package's experiments by name (tests).
func experiment(name string) (lab.Experiment, bool) {
	for _, e := range Experiments() {
		if e.Name == name {
			return e, true
		}
	}
	return lab.Experiment{}, false
}
