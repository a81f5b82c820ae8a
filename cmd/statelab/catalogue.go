package main

import (
	"slices"
	"sync"

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/quicconn"
	"github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/udpdns"
)

// catalogue is every experiment statelab runs, listed here and nowhere
// else: importing a package registers nothing. It is built at first use.
var catalogue = sync.OnceValue(func() *lab.Catalogue {
	return lab.MustCatalogue(
		slices.Concat(
			tcpstate.Experiments(),
			udpdns.Experiments(),
			quicconn.Experiments(),
			httpstate.Experiments(),
			testExperiments, // empty but in cmd/statelab's own tests
		),
		tcpstate.Summaries()...,
	)
})

// testExperiments are experiments only this program's tests add (from
// their init functions).
var testExperiments []lab.Experiment
