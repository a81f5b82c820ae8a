// Command own-experiment is a lab of one's own, built on statelab's public
// experiment API: it has statelab's command line (list, run, --json, --out,
// --seed, --html) and runs in statelab's rootless namespace, with
// experiments that live in this module.
//
//	go run . list
//	go run . run all --out /tmp/own
//	go run . run all --out /tmp/own --html /tmp/own-report
package main

import (
	"os"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/htmlreport"
)

// catalogue is this lab's experiments, listed explicitly; run --html
// writes its reports as a web page with htmlreport.
var catalogue = lab.MustCatalogue([]lab.Experiment{closedPort}).SetHTML(htmlreport.WriteDir)

func main() { os.Exit(lab.Main(catalogue, os.Args[1:], os.Stdout, os.Stderr)) }
