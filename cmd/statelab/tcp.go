package main

import (
	"encoding/json"
	"flag"
	"fmt"

	"github.com/statelab/statelab/experiments/tcpexp"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/benchcmp"
	"github.com/statelab/statelab/lab/sandbox"
)

// tcpCommands: bench tcp (main.go lists every group).
func tcpCommands() []*command {
	return []*command{
		{
			name: "bench tcp",
			args: "[--size SIZE] [--rounds N] [--json]",
			summary: "Bulk transfer through the lab's user-space TCP engine on raw sockets, lab→kernel and kernel→lab,\n" +
				"against kernel→kernel over the same loopback in interleaved rounds; prints each ratio's median with\n" +
				"its spread, and the CPU time per GiB of each side (lower is better). Runs inside the lab's network namespace.",
			examples: []string{
				"statelab bench tcp",
				"statelab bench tcp --size 4GiB --rounds 9 --json",
			},
			flags: func(fs *flag.FlagSet) {
				sizeVar(fs, &benchTCPFlags.size, "size", 1<<30, 64<<10, 4<<30, "bytes to move in each direction, such as 64MiB or 4GiB")
				intVar(fs, &benchTCPFlags.rounds, "rounds", benchcmp.DefaultRounds, 1, 100, "interleaved rounds (lab, kernel, kernel, lab, …)")
				fs.BoolVar(&benchTCPFlags.json, "json", false, "print one JSON object")
			},
			run: benchTCP,
		},
	}
}

// benchTCPFlags are `bench tcp`'s flags.
var benchTCPFlags struct {
	size   int64
	rounds int
	json   bool
}

func benchTCP(_ *flag.FlagSet, args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "statelab bench tcp: takes no arguments (got %q)\n", args)
		return exitUsage
	}
	size := benchTCPFlags.size
	if err := sandbox.Enter(); err != nil {
		fmt.Fprintf(stderr, "statelab bench tcp: %v\n", err)
		return exitUsage
	}
	ctx, stop := stopContext()
	defer stop()
	// Bench bounds itself (tcpexp.BenchTimeout) as well as the signals.
	rep, err := tcpexp.Bench(ctx, size, benchTCPFlags.rounds)
	if code := stopped(ctx, "bench tcp", benchCutShort); code != 0 {
		return code
	}
	if err != nil {
		fmt.Fprintf(stderr, "statelab bench tcp: %v\n", err)
		return exitFail
	}
	if benchTCPFlags.json {
		_ = json.NewEncoder(stdout).Encode(rep)
		return exitOK
	}
	fmt.Fprintf(stdout, "bulk transfer of %s per transfer over the lab's loopback, %d interleaved rounds (CPU: the whole process's, per GiB moved)\n",
		formatSize(size), len(rep.Rounds))
	for i, r := range rep.Rounds {
		fmt.Fprintf(stdout, "  round %d:", i+1)
		for _, t := range r {
			fmt.Fprintf(stdout, "  %s %.2f Gbit/s %.2f CPU-s/GiB", t.Name, t.Gbps, t.CPUPerGiB)
		}
		fmt.Fprintln(stdout)
	}
	for _, c := range rep.Comparisons {
		fmt.Fprintf(stdout, "  %s\n", c)
	}
	return exitOK
}

// tcpExperiments are the tcp/ experiments of statelab's catalogue.
func tcpExperiments() []lab.Experiment { return tcpexp.Experiments() }

// tcpSummaries are the tcp/ group's summaries.
func tcpSummaries() []lab.Summary { return tcpexp.Summaries() }
