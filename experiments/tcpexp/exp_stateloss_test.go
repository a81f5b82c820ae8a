package tcpexp

import (
	"testing"

	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

func TestClosedPortRST(t *testing.T) {
	rst := func(conn int, sent bool, port uint16, seq tcpstate.Seq) rawtcp.Record {
		return rawtcp.Record{Conn: conn, Sent: sent, Seg: rawtcp.RecSeg{SrcPort: port, Seq: seq, Flags: tcpstate.RST}}
	}
	tests := []struct {
		name string
		recs []rawtcp.Record
		want bool
	}{
		{"the CLOSED responder's RST at SND.NXT", []rawtcp.Record{rst(0, true, 61000, 1234)}, true},
		{"at another sequence number", []rawtcp.Record{rst(0, true, 61000, 1235)}, false},
		{"from another port", []rawtcp.Record{rst(0, true, 61001, 1234)}, false},
		{"the connection's own RST", []rawtcp.Record{rst(1, true, 61000, 1234)}, false},
		{"a RST received", []rawtcp.Record{rst(0, false, 61000, 1234)}, false},
	}
	for _, tt := range tests {
		if got := closedPortRST(tt.recs, 61000, 1234); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
