// Package browsertest opens a statelab HTML report in headless Chromium
// and reports what the browser saw: the page's script errors and console
// errors, anything it fetched, and each experiment's pictures with their
// laid-out size and mark count. Tests of the HTML report use it; it needs
// the chromium binary (labtest.NeedTool).
//
// How: the page is copied beside itself with two scripts added — one first
// in <head> that records window.onerror, unhandled rejections and
// console.error, one last in <body> that measures every <svg> once the
// page has loaded and writes the result as JSON into the DOM — and
// Chromium prints the DOM (--dump-dom) after the page's load. Chromium
// runs with --no-sandbox: its sandbox needs a setuid helper or user
// namespaces of its own, neither available inside the lab's namespace or
// to root; the page is the lab's own, from a local file.
package browsertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ErrProbe is returned when the browser's result cannot be read.
var ErrProbe = errors.New("browsertest: probing the page")

// Result is what the browser saw.
type Result struct {
	// Errors are script errors, unhandled rejections and console.error
	// calls, and console errors Chromium logged.
	Errors []string `json:"errors"`
	// Fetched are the resources the page fetched or refers to (images,
	// scripts, style sheets, frames): a self-contained page has none.
	Fetched []string `json:"fetched"`
	// Sections are the experiments' sections, in page order.
	Sections []Section `json:"sections"`
}

// Section is one experiment's part of the page.
type Section struct {
	Experiment string    `json:"experiment"`
	Pictures   []Picture `json:"pictures"`
}

// Picture is one <svg> as laid out.
type Picture struct {
	Class  string  `json:"class"`
	Width  float64 `json:"width"`
	Height float64 `json:"height"`
	// Marks counts the picture's data marks: arrows and rows of a ladder,
	// a plot's points, spans and bars, a diagram's states.
	Marks int `json:"marks"`
	// Used counts highlighted states and transitions (state diagrams).
	Used int `json:"used"`
}

const head = `<script>
window.__statelabErrors = [];
window.__statelabFetched = [];
window.addEventListener('error', function(e){
  if (e.target && e.target !== window && (e.target.src || e.target.href)) { window.__statelabFetched.push(e.target.src || e.target.href); return; }
  window.__statelabErrors.push('error: ' + e.message + ' at ' + e.filename + ':' + e.lineno);
}, true);
window.addEventListener('unhandledrejection', function(e){ window.__statelabErrors.push('unhandled rejection: ' + e.reason); });
(function(){ var ce = console.error; console.error = function(){ window.__statelabErrors.push('console.error: ' + Array.prototype.join.call(arguments, ' ')); ce.apply(console, arguments); }; })();
</script>`

const tail = `<script>
(function(){
  var out = {errors: window.__statelabErrors, fetched: window.__statelabFetched.slice(), sections: []};
  performance.getEntriesByType('resource').forEach(function(r){ out.fetched.push(r.name); });
  document.querySelectorAll('img[src], script[src], link[href][rel~=stylesheet], link[href][rel~=icon], iframe[src], audio[src], video[src], source[src], object[data], image[href]').forEach(function(el){
    var u = el.getAttribute('src') || el.getAttribute('href') || el.getAttribute('data');
    if (out.fetched.indexOf(u) < 0) out.fetched.push(u);
  });
  document.querySelectorAll('section[data-experiment]').forEach(function(s){
    var sec = {experiment: s.getAttribute('data-experiment'), pictures: []};
    s.querySelectorAll('svg').forEach(function(svg){
      var r = svg.getBoundingClientRect();
      sec.pictures.push({class: svg.getAttribute('class'), width: r.width, height: r.height,
        marks: svg.querySelectorAll('.mark, .rung, .state-box').length,
        used: svg.querySelectorAll('.used').length});
    });
    out.sections.push(sec);
  });
  var pre = document.createElement('pre');
  pre.id = 'statelab-probe';
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>`

// Probe opens page (an index.html) in Chromium and returns what it saw.
func Probe(ctx context.Context, chromium, page string) (*Result, error) {
	b, err := os.ReadFile(page)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProbe, err)
	}
	s := string(b)
	i, j := strings.Index(s, "<head>"), strings.LastIndex(s, "</body>")
	if i < 0 || j < 0 {
		return nil, fmt.Errorf("%w: %s has no <head> or </body>", ErrProbe, page)
	}
	s = s[:i+len("<head>")] + head + s[i+len("<head>"):j] + tail + s[j:]
	probe := filepath.Join(filepath.Dir(page), ".probe-"+filepath.Base(page))
	if err := os.WriteFile(probe, []byte(s), 0o644); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProbe, err)
	}
	defer os.Remove(probe)
	profile, err := os.MkdirTemp("", "statelab-chromium-")
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProbe, err)
	}
	defer os.RemoveAll(profile)
	abs, err := filepath.Abs(probe)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProbe, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, append(Flags(profile), "--enable-logging=stderr", "--v=0",
		"--virtual-time-budget=10000", "--dump-dom", "file://"+abs)...)
	cmd.Env = append(os.Environ(), "HOME="+profile)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	dom, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%w: chromium: %w\n%s", ErrProbe, err, lastLines(stderr.String(), 20))
	}
	k := strings.Index(string(dom), `<pre id="statelab-probe">`)
	if k < 0 {
		return nil, fmt.Errorf("%w: the probe wrote no result (did the page's scripts run?)\n%s", ErrProbe, lastLines(stderr.String(), 20))
	}
	rest := string(dom)[k+len(`<pre id="statelab-probe">`):]
	end := strings.Index(rest, "</pre>")
	if end < 0 {
		return nil, fmt.Errorf("%w: the probe's result is cut short", ErrProbe)
	}
	var res Result
	if err := json.Unmarshal([]byte(html.UnescapeString(rest[:end])), &res); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrProbe, err)
	}
	for _, l := range strings.Split(stderr.String(), "\n") {
		// Chromium logs the page's console messages as CONSOLE(line) lines.
		if strings.Contains(l, ":CONSOLE") && (strings.Contains(l, "Uncaught") || strings.Contains(l, "Error")) {
			res.Errors = append(res.Errors, "chromium: "+l)
		}
	}
	return &res, nil
}

// Flags are the flags Chromium runs headless with here: no sandbox (see
// the package doc), no GPU, a profile of its own, nothing phoning home.
func Flags(profile string) []string {
	return []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
		"--no-default-browser-check", "--disable-extensions", "--disable-background-networking", "--disable-sync",
		"--hide-scrollbars", "--user-data-dir=" + profile}
}

// Screenshot writes a PNG of the top width×height pixels of page.
func Screenshot(ctx context.Context, chromium, page, png string, width, height int) error {
	profile, err := os.MkdirTemp("", "statelab-chromium-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(profile)
	abs, err := filepath.Abs(page)
	if err != nil {
		return err
	}
	out, err := filepath.Abs(png)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium, append(Flags(profile), "--virtual-time-budget=5000",
		fmt.Sprintf("--window-size=%d,%d", width, height), "--screenshot="+out, "file://"+abs)...)
	cmd.Env = append(os.Environ(), "HOME="+profile)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("chromium --screenshot: %w\n%s", err, lastLines(string(b), 20))
	}
	return nil
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
