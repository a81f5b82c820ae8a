package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/statelab/statelab/experiments/tcpexp"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/sandbox"
)

func init() {
	register(&command{
		name: "bench tcp",
		args: "[--size SIZE] [--json]",
		summary: "Bulk transfer through the lab's user-space TCP engine on raw sockets, lab→kernel and kernel→lab,\n" +
			"against kernel→kernel over the same loopback in the same run; prints Gbit/s and the lab's share\n" +
			"of the kernel's throughput. Runs inside the lab's network namespace.",
		examples: []string{
			"statelab bench tcp",
			"statelab bench tcp --size 1GiB --json",
		},
		flags: func(fs *flag.FlagSet) {
			sizeVar(fs, &benchTCPFlags.size, "size", 256<<20, 64<<10, 4<<30, "bytes to move in each direction, such as 64MiB or 1GiB")
			fs.BoolVar(&benchTCPFlags.json, "json", false, "print one JSON object")
		},
		run: benchTCP,
	})
}

// benchTCPFlags are `bench tcp`'s flags.
var benchTCPFlags struct {
	size int64
	json bool
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
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Bench bounds itself (tcpexp.BenchTimeout) as well as the signals.
	res, err := tcpexp.Bench(ctx, size)
	if err != nil {
		fmt.Fprintf(stderr, "statelab bench tcp: %v\n", err)
		return exitFail
	}
	kernel := res[len(res)-1].Gbps
	if benchTCPFlags.json {
		out := map[string]any{"bytes": size, "results": res}
		for _, r := range res[:len(res)-1] {
			out["ratio_"+map[string]string{"lab→kernel": "lab_to_kernel", "kernel→lab": "kernel_to_lab"}[r.Name]] = r.Gbps / kernel
		}
		_ = json.NewEncoder(stdout).Encode(out)
		return exitOK
	}
	fmt.Fprintf(stdout, "bulk transfer of %s over the lab's loopback\n", formatSize(size))
	for _, r := range res {
		ratio := ""
		if r.Name != "kernel→kernel" {
			ratio = fmt.Sprintf("  %5.1f%% of kernel→kernel", 100*r.Gbps/kernel)
		}
		fmt.Fprintf(stdout, "  %-14s %7.2f Gbit/s  %8.1f ms%s\n", r.Name, r.Gbps, float64(r.Duration.Microseconds())/1000, ratio)
	}
	return exitOK
}

// tcpExperiments are the tcp/ experiments of statelab's catalogue.
func tcpExperiments() []lab.Experiment { return tcpexp.Experiments() }

// tcpSummaries are the tcp/ group's summaries.
func tcpSummaries() []lab.Summary { return tcpexp.Summaries() }
