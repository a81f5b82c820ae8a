package tcpstate

import "github.com/statelab/statelab/lab"

// The package's lab experiments, gathered by their files' init functions
// into this list and handed to a catalogue by the program (cmd/statelab
// builds its own explicitly): nothing is registered anywhere by import.
var experiments []lab.Experiment

func register(e lab.Experiment) {
	experiments = append(experiments, e)
}

// Experiments returns the package's experiments, for lab.NewCatalogue.
func Experiments() []lab.Experiment { return experiments }

// lookup finds one of the package's experiments by name.
func lookup(name string) (lab.Experiment, bool) {
	for _, e := range experiments {
		if e.Name == name {
			return e, true
		}
	}
	return lab.Experiment{}, false
}

// experiment is lookup for a name that must exist (tests).
func experiment(name string) lab.Experiment {
	e, ok := lookup(name)
	if !ok {
		panic("no experiment " + name)
	}
	return e
}

var summaries []lab.Summary

func registerSummary(s lab.Summary) { summaries = append(summaries, s) }

// Summaries returns the package's group summaries, for lab.NewCatalogue.
func Summaries() []lab.Summary { return summaries }
