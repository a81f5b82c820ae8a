package htmlreport

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/statelab/statelab/lab"
)

// Link is a file of a run the page links to: a capture, a qlog.
type Link struct {
	Name string // what the reader sees, e.g. "tcp/handshake.pcapng"
	Href string // relative to the page
	Kind string // "capture", "qlog"
}

// Options say what the page needs beyond the reports.
type Options struct {
	// Title heads the page; default "statelab run".
	Title string
	// Files lists an experiment's files to link (nil: none).
	Files func(*lab.Report) []Link
}

// Render writes the run's reports as one self-contained HTML page: a
// table of contents with every verdict, then per experiment what it
// shows, its pictures (ladders as sequence diagrams, its plots, the TCP
// state diagram with what the run used highlighted), its tables, figures,
// checks and links to its capture and qlogs. Everything is inline: the
// page fetches nothing.
func Render(w io.Writer, reports []*lab.Report, opts Options) error {
	if opts.Title == "" {
		opts.Title = "statelab run"
	}
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">")
	b.WriteString(`<meta name="viewport" content="width=device-width, initial-scale=1">`)
	fmt.Fprintf(&b, "<title>%s</title><style>%s</style></head><body>\n", esc(opts.Title), css)
	fmt.Fprintf(&b, "<header><h1>%s</h1>", esc(opts.Title))
	passed, failed := 0, 0
	for _, r := range reports {
		switch {
		case r.Summary:
		case r.Passed:
			passed++
		default:
			failed++
		}
	}
	seed := uint64(0)
	if len(reports) > 0 {
		seed = reports[0].Seed
	}
	fmt.Fprintf(&b, `<p class="run">%d passed, %d failed · seed %d (repeat with <code>--seed %d</code>)</p>`, passed, failed, seed, seed)
	b.WriteString(`<label class="filter"><input type="checkbox" id="only-failed"> show only failed experiments</label>`)
	b.WriteString("<nav><ul>")
	for _, r := range reports {
		fmt.Fprintf(&b, `<li><a href="#%s">%s</a> %s</li>`, anchor(r), esc(r.Experiment), badge(r))
	}
	b.WriteString("</ul></nav></header>\n<main>")
	for _, r := range reports {
		section(&b, r, opts)
	}
	b.WriteString("</main>")
	fmt.Fprintf(&b, "<script>%s</script></body></html>\n", script)
	_, err := io.WriteString(w, b.String())
	return err
}

// anchor is an experiment's id on the page.
func anchor(r *lab.Report) string {
	return "exp-" + strings.NewReplacer("/", "-", "*", "summary", " ", "-").Replace(r.Experiment)
}

func badge(r *lab.Report) string {
	switch {
	case r.Summary:
		return `<span class="badge summary">summary</span>`
	case r.Passed:
		return `<span class="badge pass">PASS</span>`
	case r.Interrupted != "":
		return `<span class="badge notjudged">STOP</span>`
	}
	return `<span class="badge fail">FAIL</span>`
}

// section is one experiment.
func section(b *strings.Builder, r *lab.Report, opts Options) {
	cls := "experiment"
	if !r.Passed && !r.Summary {
		cls += " failed"
	}
	if r.Summary {
		cls += " summary"
	}
	fmt.Fprintf(b, `<section class="%s" id="%s" data-experiment="%s"><h2>%s %s</h2>`, cls, anchor(r), esc(r.Experiment), esc(r.Experiment), badge(r))
	if r.Shows != "" {
		fmt.Fprintf(b, `<p class="shows">%s</p>`, esc(r.Shows))
	}
	var files []Link
	if opts.Files != nil {
		files = opts.Files(r)
	}
	if len(files) > 0 {
		b.WriteString(`<p class="files">`)
		for i, f := range files {
			if i > 0 {
				b.WriteString(" · ")
			}
			fmt.Fprintf(b, `<a class="%s" href="%s">%s</a>`, esc(f.Kind), esc(f.Href), esc(f.Name))
		}
		b.WriteString("</p>")
	}
	switch {
	case r.Interrupted != "":
		fmt.Fprintf(b, `<p class="error">Stopped: interrupted by %s; the checks below are those made before it.</p>`, esc(r.Interrupted))
	case r.Error != "":
		fmt.Fprintf(b, `<p class="error">Error: %s</p>`, esc(r.Error))
	}
	plot := func(p *lab.Plot) {
		b.WriteString(`<figure class="picture">`)
		fmt.Fprintf(b, "<figcaption>%s</figcaption>", esc(p.Title))
		plotSVG(b, p)
		b.WriteString("</figure>")
	}
	after := plotsAfter(r)
	for i, l := range r.Ladders {
		b.WriteString(`<figure class="picture">`)
		fmt.Fprintf(b, "<figcaption>%s</figcaption>", esc(l.Title))
		ladderSVG(b, l)
		b.WriteString("</figure>")
		for _, p := range after[i] {
			plot(p)
		}
	}
	for _, p := range after[-1] {
		plot(p)
	}
	if u, ok := tcpUsed(r); ok {
		b.WriteString(`<figure class="picture">`)
		b.WriteString("<figcaption>TCP's states (RFC 9293), from tcpstate's transition table: what this run's endpoints went through, highlighted</figcaption>")
		stateDiagramSVG(b, u)
		b.WriteString("</figure>")
	}
	for _, t := range r.Tables {
		table(b, t)
	}
	if len(r.Metrics) > 0 {
		b.WriteString(`<details class="metrics"><summary>Measured (` + fmt.Sprint(len(r.Metrics)) + `)</summary><table>`)
		names := make([]string, 0, len(r.Metrics))
		for n := range r.Metrics {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(b, "<tr><td>%s</td><td class=\"num\">%s</td></tr>", esc(n), num(r.Metrics[n]))
		}
		b.WriteString("</table></details>")
	}
	for _, n := range r.Notes {
		fmt.Fprintf(b, `<p class="note">%s</p>`, esc(n))
	}
	if len(r.Checks) > 0 {
		b.WriteString(`<ul class="checks">`)
		for _, c := range r.Checks {
			v, cls := "PASS", "pass"
			switch {
			case c.NotJudged != "":
				v, cls = "----", "notjudged"
			case !c.Passed:
				v, cls = "FAIL", "fail"
			}
			detail := c.Detail
			if c.NotJudged != "" {
				detail = "not judged, " + c.NotJudged
			}
			fmt.Fprintf(b, `<li class="%s"><span class="verdict">%s</span> <b>%s</b>: %s</li>`, cls, v, esc(c.Name), esc(detail))
		}
		b.WriteString("</ul>")
	} else if r.Summary {
		b.WriteString(`<p class="note">A summary of this run's reports: it informs, it judges nothing.</p>`)
	}
	fmt.Fprintf(b, `<p class="duration">%s ms</p></section>`+"\n", num(r.DurationMS))
}

// plotsAfter places each plot after the ladder it draws more of: the
// ladder whose title begins with the plot's subject (the plot title's
// part before its last ": "); plots of no ladder go under -1,
// after every ladder. Order within a ladder is the report's.
func plotsAfter(r *lab.Report) map[int][]*lab.Plot {
	out := map[int][]*lab.Plot{}
	for _, p := range r.Plots {
		at, best := -1, 0
		if k := strings.LastIndex(p.Title, ": "); k >= 6 {
			subject := p.Title[:k]
			for i, l := range r.Ladders {
				if strings.HasPrefix(l.Title, subject) && len(subject) > best {
					at, best = i, len(subject)
				}
			}
		}
		out[at] = append(out[at], p)
	}
	return out
}

// table is an evidence table, the first row its header.
func table(b *strings.Builder, t lab.Table) {
	b.WriteString(`<figure class="table">`)
	if t.Title != "" {
		fmt.Fprintf(b, "<figcaption>%s</figcaption>", esc(t.Title))
	}
	b.WriteString("<table>")
	for i, row := range t.Rows {
		b.WriteString("<tr>")
		tag := "td"
		if i == 0 {
			tag = "th"
		}
		for _, c := range row {
			fmt.Fprintf(b, "<%s>%s</%s>", tag, esc(c), tag)
		}
		b.WriteString("</tr>")
	}
	b.WriteString("</table></figure>")
}

const css = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1b1b;background:#fafafa}
header{padding:16px 28px;background:#fff;border-bottom:1px solid #ddd}
h1{margin:0 0 4px;font-size:22px} h2{font-size:18px;margin:0 0 6px}
nav ul{columns:3;list-style:none;padding:0;margin:8px 0 0} nav li{margin:1px 0}
main{padding:8px 28px 40px}
section.experiment{background:#fff;border:1px solid #ddd;border-radius:6px;padding:14px 18px;margin:16px 0}
section.failed{border-color:#d62728}
.badge{font-size:11px;font-weight:600;padding:1px 6px;border-radius:3px;color:#fff;vertical-align:middle}
.badge.pass{background:#2e7d32}.badge.fail{background:#c62828}.badge.summary{background:#607d8b}.badge.notjudged{background:#8d6e00}
.shows{font-size:15px;margin:4px 0 8px}
.files a{font-family:ui-monospace,monospace;font-size:12px}
figure{margin:14px 0} figcaption{font-weight:600;margin-bottom:4px;color:#333}
svg{max-width:100%;height:auto;background:#fff;font-family:system-ui,sans-serif;font-size:11px}
svg .who{font-weight:600;font-size:13px} svg .life{stroke:#888;stroke-width:1}
svg .jump{stroke:#888} svg .jumplabel{fill:#777;font-style:italic;font-size:10px}
svg .state{fill:#0b5394} svg .t{fill:#888;font-size:10px} svg .dot{fill:#0b5394}
svg .reported{stroke:#555;stroke-dasharray:4 4}
svg .rung:hover .label{font-weight:700} svg .rung:hover .arrow{stroke-width:3}
svg .frame{fill:none;stroke:#999} svg .grid{stroke:#eee} svg .tick{fill:#555;font-size:10px}
svg .axis{fill:#333;font-size:11px} svg .legend{fill:#333;font-size:11px} svg .lanelabel{fill:#333}
svg .lane-rule{stroke:#eee} svg .spanlabel{fill:#fff;font-size:10px;pointer-events:none}
svg .edge{fill:none;stroke:#ccc;stroke-width:1} svg .edge.teardown{stroke-dasharray:4 3}
svg .edge.used{stroke:#1565c0;stroke-width:2.5} svg .edge:hover{stroke-width:4}
svg .state-box rect{fill:#f4f4f4;stroke:#bbb} svg .state-box text{fill:#999;font-size:11px}
svg .state-box.used rect{fill:#1565c0;stroke:#0d47a1} svg .state-box.used text{fill:#fff;font-weight:600}
table{border-collapse:collapse;font-size:13px} td,th{border:1px solid #ddd;padding:3px 7px;vertical-align:top;text-align:left}
th{background:#f0f0f0} td.num{text-align:right;font-family:ui-monospace,monospace}
ul.checks{list-style:none;padding:0} ul.checks li{margin:2px 0}
.verdict{font-family:ui-monospace,monospace;font-weight:700;padding:0 4px;border-radius:3px}
li.pass .verdict{color:#2e7d32} li.fail .verdict{color:#fff;background:#c62828} li.notjudged .verdict{color:#777}
.note{color:#444;font-style:italic} .error{color:#c62828;font-weight:600} .duration{color:#888;font-size:12px;text-align:right;margin:0}
.empty{color:#888}
body.only-failed section.experiment:not(.failed){display:none}
`

// script is the page's only behaviour: the "only failed" filter.
const script = `
(function(){
  var box = document.getElementById('only-failed');
  if (!box) return;
  box.addEventListener('change', function(){ document.body.classList.toggle('only-failed', box.checked); });
})();
`
