// Command own-experiment is a lab of one's own, built on statelab's public
// experiment API: it has statelab's command line (list, run, --json, --out,
// --seed) and runs in statelab's rootless namespace, with experiments that
// live in this module.
//
//	go run . list
//	go run . run all --out /tmp/own
package main

import (
	"os"

	"github.com/statelab/statelab/lab"
)

// catalogue is this lab's experiments, listed explicitly.
var catalogue = lab.MustCatalogue([]lab.Experiment{closedPort})

func main() { os.Exit(lab.Main(catalogue, os.Args[1:], os.Stdout, os.Stderr)) }
