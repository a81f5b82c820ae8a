package tcpexp

import (
	"fmt"
	"time"

	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// ms renders a duration in milliseconds with one decimal.
func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Millisecond)) }

// report tables every round of every connection and draws the ladders.
func (x *nagleExp) report() {
	for _, nc := range x.cases {
		rows := [][]string{{"round", "header → its ACK (ms)", "ACK", "header → body (ms)", "body", "round, client's clock (ms)"}}
		for i, rd := range nc.rounds {
			if !rd.found {
				rows = append(rows, []string{fmt.Sprint(i + 1), "not in the records", "", "", "", ""})
				continue
			}
			ack := "on the response"
			if rd.pureACK {
				ack = "pure ACK"
			}
			body := "with the header unacknowledged"
			if rd.bodyAfterACK() {
				body = "after the header's ACK"
			}
			wall := ""
			if i < len(nc.wall) {
				wall = ms(nc.wall[i])
			}
			rows = append(rows, []string{fmt.Sprint(i + 1), ms(rd.ackDelay()), ack, ms(rd.bodyWait()), body, wall})
		}
		x.env.Table(nc.label+": each round (lab's clock: when the lab sent or handled each segment)", rows)
	}
	for _, nc := range x.cases {
		from := 1 // the kernel's quick ACK is round 1; round 2 shows the stall
		if !nc.labClient {
			from = nagleQuickRounds // the lab's quick-ACK mode covers the first rounds
		}
		x.ladderRounds(nc, from)
	}
	x.feature(featureNagle, featureDelayedACK, featureQuickACK)
	x.states(tcpstate.SynSent, tcpstate.Listen, tcpstate.SynReceived, tcpstate.Established, tcpstate.TimeWait, tcpstate.LastAck, tcpstate.Closed)
}

// ladderRounds draws a connection's handshake and first round, then the
// rounds from round from+1 on, where the stall (or its absence) shows,
// collapsing the rounds between.
func (x *nagleExp) ladderRounds(nc *nagleCase, from int) {
	if from >= len(nc.rounds) || !nc.rounds[from].found {
		x.ladder(nc.label, nc.c)
		return
	}
	first := nc.rounds[from].hdrRec
	last := nc.rounds[min(from+1, len(nc.rounds)-1)].respRec
	x.ladderN(nc.label+fmt.Sprintf(": the handshake, then rounds %d–%d", from+1, min(from+2, len(nc.rounds))), nc.c, 3, 4,
		func(rec *rawtcp.Record) bool {
			i := recIndex(x.recs, rec)
			return i >= first && (last < 0 || i <= last)
		})
}

// recIndex is rec's index in recs (rec points into it), -1 if it does not.
func recIndex(recs []rawtcp.Record, rec *rawtcp.Record) int {
	for i := range recs {
		if &recs[i] == rec {
			return i
		}
	}
	return -1
}
