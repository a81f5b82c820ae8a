package main

import (
	"flag"
	"fmt"

	"github.com/statelab/statelab/lab"
)

// runCommands: list and run (main.go lists every group).
func runCommands() []*command {
	return []*command{
		{
			name:    "list",
			summary: "List the experiments, one line each: NAME  summary.",
			examples: []string{
				"statelab list",
				"statelab list | grep ^tcp/",
			},
			run: func(_ *flag.FlagSet, args []string) int {
				if len(args) > 0 {
					fmt.Fprintf(stderr, "statelab list: takes no arguments (got %q)\n", args)
					return exitUsage
				}
				catalogue().List(stdout)
				return exitOK
			},
		},
		{
			name: "run",
			args: "[--out DIR] [--json] [--seed N] [--html DIR] TARGET...",
			summary: "Run experiments: TARGET is an experiment (http/calculator), a group (http, tcp, dns, quic) or all.\n" +
				"A summary's name is a target too: tcp/* runs its group, who-holds-the-state the experiments\n" +
				"that hold a row of that table. Each prints what it shows, a ladder diagram of the exchange\n" +
				"that really happened, the measured figures and every check as PASS/FAIL, and writes its\n" +
				"capture to DIR/<group>/<name>.pcapng.\n" +
				"Exit status: 0 every check passed, 1 a check failed, 2 usage or environment error,\n" +
				"128+signal when stopped by SIGINT, SIGTERM or SIGHUP (captures written).",
			examples: []string{
				"statelab run http/calculator",
				"statelab run all --out /tmp/captures",
				"statelab run http --json | jq .metrics",
				"statelab run tcp/handshake --seed 42    # repeat a run's random choices",
				"statelab run who-holds-the-state        # where each protocol keeps the state, side by side",
				"statelab run all --html report          # also report/index.html: ladders, plots, state diagrams",
			},
			flags: runFlags.Declare,
			run: func(_ *flag.FlagSet, targets []string) int {
				return catalogue().RunTargets(targets, runFlags, stdout, stderr)
			},
		},
	}
}

// runFlags are `run`'s flags, the lab's own (lab.Main reads the same).
var runFlags lab.RunFlags
