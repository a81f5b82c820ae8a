package tcpexp

import (
	"testing"
	"time"

	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// dataRec and ackRec are records of connection id: the lab's data at seq,
// and a kernel ACK of ack with window w.
func dataRec(id int, at time.Duration, seq tcpstate.Seq, note string, rto time.Duration) rawtcp.Record {
	return rawtcp.Record{Conn: id, At: at, Sent: true, Note: note, TCB: tcpstate.TCB{RTO: rto},
		Seg: rawtcp.RecSeg{Seq: seq, Flags: tcpstate.ACK | tcpstate.PSH, Len: 1000}}
}

func ackRec(id int, ack tcpstate.Seq, w uint16) rawtcp.Record {
	return rawtcp.Record{Conn: id, Seg: rawtcp.RecSeg{Ack: ack, Flags: tcpstate.ACK, Window: w}}
}

func TestCountDupACKs(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		recs []rawtcp.Record
		want dupACKs
	}{
		{"the third duplicate triggers the retransmission",
			[]rawtcp.Record{
				dataRec(1, 1*ms, 1001, "held by the link", 0), dataRec(1, 2*ms, 2001, "", 0),
				ackRec(1, 1001, 500), ackRec(1, 1001, 500), ackRec(1, 1001, 500), ackRec(1, 1001, 500),
				dataRec(1, 5*ms, 1001, "", 0), ackRec(1, 1001, 500), dataRec(1, 9*ms, 1001, "released late by the link", 0),
			},
			dupACKs{dup: 4, rtxAfterDup: 3, firstSent: 1 * ms, rtxAt: 5 * ms}},
		{"an ACK that moves the window is no duplicate; another connection's records do not count",
			[]rawtcp.Record{
				dataRec(1, 1*ms, 1001, "", 0), ackRec(1, 1001, 500), ackRec(1, 1001, 600), ackRec(2, 1001, 600), ackRec(1, 1001, 600),
			},
			dupACKs{dup: 1, firstSent: 1 * ms}},
		{"a copy released late is not the retransmission",
			[]rawtcp.Record{dataRec(1, 1*ms, 1001, "", 0), dataRec(1, 2*ms, 1001, "released late by the link", 0)},
			dupACKs{firstSent: 1 * ms}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := countDupACKs(tt.recs, 1, 1001); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDataTransmissionsCarryTheArmedRTO(t *testing.T) {
	ms := time.Millisecond
	recs := []rawtcp.Record{
		dataRec(1, 10*ms, 1001, "dropped by the link", 50*ms), ackRec(1, 1001, 500),
		dataRec(2, 20*ms, 1001, "", 300*ms),
		dataRec(1, 60*ms, 1001, "dropped by the link", 100*ms), dataRec(1, 160*ms, 1001, "", 200*ms),
	}
	times, rtos := dataTransmissions(recs, 1)
	if len(times) != 3 || times[0] != 10*ms || times[2] != 160*ms || rtos[0] != 50*ms || rtos[1] != 100*ms || rtos[2] != 200*ms {
		t.Errorf("times %v rtos %v, want connection 1's three transmissions and their RTOs", times, rtos)
	}
}
