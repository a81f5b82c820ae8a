package htmlreport

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/statelab/statelab/lab"
)

// ErrWrite wraps a failure to write the page.
var ErrWrite = errors.New("htmlreport: writing the page")

// WriteDir writes the run's page to dir/index.html, linking each
// experiment's captures and the qlog files beside them
// (<capture dir>/<name>-*.sqlog) by paths relative to dir. It is a
// lab.HTMLWriter: Catalogue.SetHTML(htmlreport.WriteDir).
func WriteDir(dir string, reports []*lab.Report) error {
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrWrite, err)
	}
	var buf bytes.Buffer
	err = Render(&buf, reports, Options{Files: func(r *lab.Report) []Link { return files(absDir, r) }})
	if err != nil {
		return fmt.Errorf("%w: %w", ErrWrite, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("%w: %w", ErrWrite, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.html"), buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("%w: %w", ErrWrite, err)
	}
	return nil
}

// files lists a report's captures and the qlogs beside them, relative to
// the page's directory.
func files(absDir string, r *lab.Report) []Link {
	var out []Link
	seen := map[string]bool{}
	add := func(path, kind string) {
		abs, err := filepath.Abs(path)
		if err != nil || seen[abs] {
			return
		}
		seen[abs] = true
		rel, err := filepath.Rel(absDir, abs)
		if err != nil {
			rel = abs
		}
		name := filepath.Join(filepath.Base(filepath.Dir(abs)), filepath.Base(abs))
		out = append(out, Link{Name: name, Href: filepath.ToSlash(rel), Kind: kind})
	}
	for _, c := range r.Captures {
		add(c, "capture")
	}
	for _, c := range r.Captures {
		stem := strings.TrimSuffix(filepath.Base(c), ".pcapng")
		qlogs, _ := filepath.Glob(filepath.Join(filepath.Dir(c), stem+"-*.sqlog"))
		for _, q := range qlogs {
			add(q, "qlog")
		}
	}
	return out
}
