package tcpexp

import (
	"slices"
	"strings"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/rawtcp"
)

// Which TCP features each tcp experiment exercised, for the tcp/* summary
// beside the states table.
//
// The convention: an experiment records the metric "feature.<name>" = 1
// for every feature it exercised in this run (labRun.feature), <name> in
// lower case with hyphens, one of the names below or a new one (the
// summary lists any name it finds, after the known ones). Besides what an
// experiment declares, labRun.stop records the features its driver's
// records show on their own (recordFeatures): window scale agreed, an ACK
// delayed, data held by Nagle or by sender SWS avoidance, a zero-window
// probe.
const featureMetric = "feature."

// The features the summary knows, in its order, with where they are
// specified.
const (
	featureWindowScale = "window-scale"
	featureSACK        = "sack"
	featureTimestamps  = "timestamps"
	featurePAWS        = "paws"
	featureDelayedACK  = "delayed-ack"
	featureQuickACK    = "quick-ack"
	featureNagle       = "nagle"
	featureSenderSWS   = "sender-sws"
	featureReceiverSWS = "receiver-sws"
	featureZeroWindow  = "zero-window-probe"
	featureRTO         = "rto"
	featureFastRetx    = "fast-retransmit"
	featureChallenge   = "challenge-ack"
	featureKeepAlive   = "keep-alive"
	featureUserTimeout = "user-timeout"
	featureSYNCookies  = "syn-cookies"
)

var knownFeatures = []struct{ name, spec string }{
	{featureWindowScale, "RFC 7323 §2"},
	{featureSACK, "RFC 2018, RFC 6675"},
	{featureTimestamps, "RFC 7323 §3"},
	{featurePAWS, "RFC 7323 §5"},
	{featureDelayedACK, "RFC 9293 §3.8.6.3, RFC 1122 §4.2.3.2"},
	{featureQuickACK, "Linux quickack mode, RFC 5681 §4.2"},
	{featureNagle, "RFC 896, RFC 9293 §3.7.4"},
	{featureSenderSWS, "RFC 9293 §3.8.6.2.1"},
	{featureReceiverSWS, "RFC 9293 §3.8.6.2.2"},
	{featureZeroWindow, "RFC 9293 §3.8.6.1"},
	{featureRTO, "RFC 6298"},
	{featureFastRetx, "RFC 5681, RFC 6582"},
	{featureChallenge, "RFC 5961"},
	{featureKeepAlive, "RFC 1122 §4.2.3.6"},
	{featureUserTimeout, "RFC 5482"},
	{featureSYNCookies, "RFC 4987"},
}

// feature records that this run exercised the named features.
func (r *labRun) feature(names ...string) {
	for _, n := range names {
		r.env.Metric(featureMetric+n, 1)
	}
}

// recordFeatures finds the features the driver's records show on their
// own.
func recordFeatures(recs []rawtcp.Record) []string {
	found := map[string]bool{}
	synWS := map[int][2]bool{} // conn → the lab's SYN, the peer's SYN offered window scale
	for i := range recs {
		rec := &recs[i]
		if rec.Conn == 0 {
			continue
		}
		if rec.Seg.Flags&tcpstate.SYN != 0 && rec.Seg.HasWScale {
			w := synWS[rec.Conn]
			if rec.Sent {
				w[0] = true
			} else {
				w[1] = true
			}
			synWS[rec.Conn] = w
			if w[0] && w[1] {
				found[featureWindowScale] = true
			}
		}
		switch {
		case !rec.Sent && rec.Seg.Len > 0 && rec.TCB.ACKDelayed:
			found[featureDelayedACK] = true
		case rec.Sent && rec.Seg.Len == 1 && rec.TCB.SndWnd == 0 && rec.Note == "":
			found[featureZeroWindow] = true
		}
		switch rec.TCB.Held {
		case tcpstate.HoldNagle:
			found[featureNagle] = true
		case tcpstate.HoldSWS:
			found[featureSenderSWS] = true
		}
	}
	var out []string
	for n := range found {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// featuresAcrossCatalogue tables, for each feature, the experiments that
// exercised it: the known features first, then any other name found.
// It informs and does not judge: which features a run must exercise is
// each experiment's own check.
func featuresAcrossCatalogue(reports []*lab.Report) lab.Table {
	rows := [][]string{{"feature", "specified in", "exercised in"}}
	known := map[string]bool{}
	byFeature := func(name string) string {
		var by []string
		for _, r := range reports {
			if r.Metrics[featureMetric+name] == 1 {
				by = append(by, r.Experiment)
			}
		}
		if len(by) == 0 {
			return "—"
		}
		return strings.Join(by, ", ")
	}
	for _, f := range knownFeatures {
		known[f.name] = true
		rows = append(rows, []string{f.name, f.spec, byFeature(f.name)})
	}
	var other []string
	for _, r := range reports {
		for m := range r.Metrics {
			if n, ok := strings.CutPrefix(m, featureMetric); ok && !known[n] && !slices.Contains(other, n) {
				other = append(other, n)
			}
		}
	}
	slices.Sort(other)
	for _, n := range other {
		rows = append(rows, []string{n, "", byFeature(n)})
	}
	return lab.Table{Title: "TCP features exercised across the tcp experiments (metric feature.<name> = 1)", Rows: rows}
}
