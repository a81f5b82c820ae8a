package main

import (
	"flag"
	"fmt"

	"github.com/statelab/statelab/tcpstate"
)

// diagramCommands: diagram (main.go lists every group).
func diagramCommands() []*command {
	return []*command{
		{
			name: "diagram",
			args: "tcp",
			summary: "Print a state machine's diagram as Graphviz DOT, rendered from the same transition table\n" +
				"the engine runs and the tests check.",
			examples: []string{
				"statelab diagram tcp | dot -Tsvg > tcp-states.svg",
			},
			run: func(_ *flag.FlagSet, args []string) int {
				if len(args) != 1 || args[0] != "tcp" {
					fmt.Fprintf(stderr, "statelab diagram: name the machine: tcp (got %q)\n", args)
					return exitUsage
				}
				fmt.Fprint(stdout, tcpstate.DiagramDOT())
				return exitOK
			},
		},
	}
}
