package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/statelab/statelab/internal/sandbox"
	"github.com/statelab/statelab/tcpstate"
)

func init() {
	register(&command{
		name: "bench tcp",
		args: "[--size BYTES] [--json]",
		summary: "Bulk transfer through the lab's user-space TCP engine on raw sockets, lab→kernel and kernel→lab,\n" +
			"against kernel→kernel over the same loopback in the same run; prints Gbit/s and the lab's share\n" +
			"of the kernel's throughput. Runs inside the lab's network namespace.",
		examples: []string{
			"statelab bench tcp",
			"statelab bench tcp --size 1073741824 --json",
		},
		flags: func(fs *flag.FlagSet) {
			fs.Int64("size", 256<<20, "bytes to move in each direction")
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
	size := fs.Lookup("size").Value.(flag.Getter).Get().(int64)
	if size <= 0 {
		fmt.Fprintln(stderr, "statelab bench tcp: --size must be positive")
		return exitUsage
	}
	if err := sandbox.Enter(); err != nil {
		fmt.Fprintf(stderr, "statelab bench tcp: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := tcpstate.Bench(ctx, size)
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
