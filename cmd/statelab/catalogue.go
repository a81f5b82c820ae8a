package main

import (
	"slices"
	"sync"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/htmlreport"
)

// catalogue is every experiment statelab runs, listed here and nowhere
// else: importing a package registers nothing. It is built at first use.
var catalogue = sync.OnceValue(func() *lab.Catalogue {
	return lab.MustCatalogue(
		slices.Concat(
			tcpExperiments(), // each group's list is in its command file
			dnsExperiments(),
			quicExperiments(),
			httpExperiments(),
			testExperiments, // empty but in cmd/statelab's own tests
		),
		tcpSummaries()...,
	).SetHTML(htmlreport.WriteDir) // run --html DIR
})

// testExperiments are experiments only this program's tests add (from
// their init functions).
var testExperiments []lab.Experiment
