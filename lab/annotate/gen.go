//go:build ignore

// gen writes the Wireshark plugin and profile generated from Table; run by
// go generate ./lab/annotate.
package main

import (
	"log"
	"os"
	"path/filepath"

	"github.com/statelab/statelab/lab/annotate"
)

func main() {
	root := filepath.Join("..", "..")
	for path, b := range annotate.Generated() {
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			log.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			log.Fatal(err)
		}
	}
}
