package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/statelab/statelab/internal/lab"
	"github.com/statelab/statelab/internal/sandbox"
	"golang.org/x/sys/unix"
)

func init() {
	register(&command{
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
			all := lab.All()
			w := 0
			for _, e := range all {
				w = max(w, len(e.Name))
			}
			for _, e := range all {
				fmt.Fprintf(stdout, "%-*s  %s\n", w, e.Name, e.Summary)
			}
			return exitOK
		},
	})
	register(&command{
		name: "run",
		args: "[--out DIR] [--json] [--seed N] TARGET...",
		summary: "Run experiments: TARGET is an experiment (http/calculator), a group (http, tcp, dns, quic) or all.\n" +
			"Each prints what it shows, a ladder diagram of the exchange that really happened, the measured\n" +
			"figures and every check as PASS/FAIL, and writes its capture to DIR/<group>/<name>.pcapng.\n" +
			"Exit status: 0 every check passed, 1 a check failed, 2 usage or environment error.",
		examples: []string{
			"statelab run http/calculator",
			"statelab run all --out /tmp/captures",
			"statelab run http --json | jq .metrics",
			"statelab run tcp/handshake --seed 42    # repeat a run's random choices",
		},
		flags: func(fs *flag.FlagSet) {
			fs.String("out", "captures", "write captures under `DIR`")
			fs.Bool("json", false, "print one JSON object per experiment (JSON Lines) instead of the human report")
			fs.Uint64("seed", 0, "seed for the experiments' random choices (0: pick one and report it)")
			fs.Duration("timeout", 2*time.Minute, "give up on an experiment after this long")
			fs.Bool("v", false, "print progress lines")
		},
		run: runCmd,
	})
}

func runCmd(fs *flag.FlagSet, targets []string) int {
	if len(targets) == 0 {
		fmt.Fprintf(stderr, "statelab run: name an experiment, a group or all (groups: %s); `statelab list` shows them\n", strings.Join(lab.Groups(), ", "))
		return exitUsage
	}
	exps, err := lab.Select(targets)
	if err != nil {
		fmt.Fprintf(stderr, "statelab run: %v\n", err)
		return exitUsage
	}
	opts := lab.Options{
		OutDir:  fs.Lookup("out").Value.String(),
		Seed:    fs.Lookup("seed").Value.(flag.Getter).Get().(uint64),
		Timeout: fs.Lookup("timeout").Value.(flag.Getter).Get().(time.Duration),
	}
	asJSON := fs.Lookup("json").Value.String() == "true"
	if fs.Lookup("v").Value.String() == "true" {
		opts.Log = stderr
	}
	if opts.Seed > lab.MaxSeed {
		fmt.Fprintf(stderr, "statelab run: --seed %d is too large: seeds go up to %d (2^53−1), so that every JSON reader keeps them exact\n", opts.Seed, uint64(lab.MaxSeed))
		return exitUsage
	}
	if opts.Seed == 0 {
		// Pick the seed before entering the sandbox so parent and child
		// agree, and say it so the run can be repeated.
		opts.Seed = lab.NewSeed()
	}

	if err := sandbox.Enter(); err != nil {
		fmt.Fprintf(stderr, "statelab run: %v\n", err)
		return exitUsage
	}
	// SIGINT, SIGTERM and SIGHUP (the terminal closed) end a run the same
	// way: the experiment in progress is cancelled, its captures and
	// qlogs are written, and the exit status is 128+signal.
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	go func() {
		if s, ok := <-sigs; ok {
			cancel(interrupted{s.(syscall.Signal)})
		}
	}()

	var out io.Writer = stdout
	reports := lab.Run(ctx, exps, opts, func(r *lab.Report) {
		if asJSON {
			_ = r.WriteJSON(out)
		} else {
			_ = r.WriteText(out)
		}
	})
	return summarise(ctx, reports, len(exps), opts.Seed)
}

// interrupted is the cause of a run cancelled by a signal.
type interrupted struct{ syscall.Signal }

func (i interrupted) Error() string { return "interrupted by " + unix.SignalName(i.Signal) }

func summarise(ctx context.Context, reports []*lab.Report, want int, seed uint64) int {
	var failed, envFailed []string
	ran := 0
	for _, r := range reports {
		if !r.Summary {
			ran++
		}
		switch {
		case r.EnvError:
			envFailed = append(envFailed, r.Experiment+": "+r.Error)
		case !r.Passed:
			failed = append(failed, r.Experiment)
		}
	}
	var sig interrupted
	switch {
	case errors.As(context.Cause(ctx), &sig):
		fmt.Fprintf(stderr, "statelab: stopped by %s after %d of %d experiments; their captures are written\n", unix.SignalName(sig.Signal), ran, want)
		return 128 + int(sig.Signal)
	case errors.Is(ctx.Err(), context.Canceled):
		fmt.Fprintf(stderr, "statelab: interrupted after %d of %d experiments; their captures are written\n", ran, want)
		return 130
	case len(envFailed) > 0:
		fmt.Fprintf(stderr, "statelab: this machine cannot run:\n  %s\n", strings.Join(envFailed, "\n  "))
		return exitUsage
	case len(failed) > 0:
		fmt.Fprintf(stderr, "statelab: %d of %d experiments failed: %s (seed %d; rerun with --seed %d)\n",
			len(failed), ran, strings.Join(failed, ", "), seed, seed)
		return exitFail
	}
	fmt.Fprintf(stderr, "statelab: all %d experiments passed (seed %d)\n", ran, seed)
	return exitOK
}
