package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
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
			sz := sizeFlag(256 << 20)
			fs.Var(&sz, "size", "bytes to move in each direction: a number with an optional KiB, MiB or GiB suffix")
			fs.Bool("json", false, "print one JSON object")
		},
		run: benchTCP,
	})
}

func benchTCP(fs *flag.FlagSet, args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "statelab bench tcp: takes no arguments (got %q)\n", args)
		return exitUsage
	}
	size := int64(*fs.Lookup("size").Value.(*sizeFlag))
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
	if fs.Lookup("json").Value.String() == "true" {
		out := map[string]any{"bytes": size, "results": res}
		for _, r := range res[:len(res)-1] {
			out["ratio_"+map[string]string{"lab→kernel": "lab_to_kernel", "kernel→lab": "kernel_to_lab"}[r.Name]] = r.Gbps / kernel
		}
		_ = json.NewEncoder(stdout).Encode(out)
		return exitOK
	}
	fmt.Fprintf(stdout, "bulk transfer of %d MiB over the lab's loopback\n", size>>20)
	for _, r := range res {
		ratio := ""
		if r.Name != "kernel→kernel" {
			ratio = fmt.Sprintf("  %5.1f%% of kernel→kernel", 100*r.Gbps/kernel)
		}
		fmt.Fprintf(stdout, "  %-14s %7.2f Gbit/s  %8.1f ms%s\n", r.Name, r.Gbps, float64(r.Duration.Microseconds())/1000, ratio)
	}
	return exitOK
}

// sizeFlag is a positive byte count written as a number with an optional
// binary suffix: 4194304, 4MiB, 256MiB, 1GiB.
type sizeFlag int64

func (s *sizeFlag) String() string {
	v := int64(*s)
	switch {
	case v >= 1<<30 && v%(1<<30) == 0:
		return strconv.FormatInt(v>>30, 10) + "GiB"
	case v >= 1<<20 && v%(1<<20) == 0:
		return strconv.FormatInt(v>>20, 10) + "MiB"
	case v >= 1<<10 && v%(1<<10) == 0:
		return strconv.FormatInt(v>>10, 10) + "KiB"
	}
	return strconv.FormatInt(v, 10)
}

func (s *sizeFlag) Set(v string) error {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}} {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/mult {
		return errors.New("want a positive size such as 4194304, 4MiB or 1GiB")
	}
	*s = sizeFlag(n * mult)
	return nil
}

// tcpExperiments are the tcp/ experiments of statelab's catalogue.
func tcpExperiments() []lab.Experiment { return tcpexp.Experiments() }

// tcpSummaries are the tcp/ group's summaries.
func tcpSummaries() []lab.Summary { return tcpexp.Summaries() }
