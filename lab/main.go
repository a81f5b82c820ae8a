package lab

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/statelab/statelab/lab/sandbox"
	"github.com/statelab/statelab/lab/subproc"
)

// Exit statuses of a lab program, the CLI contract.
const (
	ExitOK    = 0
	ExitFail  = 1 // a check failed
	ExitUsage = 2 // bad usage, or an environment that cannot run the lab
)

// Main is the whole program of a lab: a user's main is
//
//	func main() { os.Exit(lab.Main(catalogue, os.Args[1:], os.Stdout, os.Stderr)) }
//
// and gets statelab's command line: `list`, `run TARGET... [--json] [--out
// DIR] [--seed N] [--timeout D] [-v]` and `help`, the same reports, exit
// statuses (0 passed, 1 a check failed, 2 usage or environment, 128+signal
// when stopped), and the rootless namespace every run enters. A process
// started as one of the catalogue's roles runs that role instead.
func Main(cat *Catalogue, args []string, stdout, stderr io.Writer) int {
	subproc.Dispatch(cat.Roles())
	defer sandbox.RemoveTemp() // if the parent that made it was killed first
	usage := func(w io.Writer) {
		fmt.Fprintf(w, "Usage: %s list | run TARGET... [flags] | help\n\nrun flags:\n", progName())
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		(&RunFlags{}).Declare(fs)
		fs.SetOutput(w)
		fs.PrintDefaults()
	}
	if len(args) == 0 {
		usage(stderr)
		return ExitUsage
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return ExitOK
	case "list":
		if len(args) > 1 {
			fmt.Fprintf(stderr, "%s list: takes no arguments (got %q)\n", progName(), args[1:])
			return ExitUsage
		}
		cat.List(stdout)
		return ExitOK
	case "run":
		var f RunFlags
		fs := flag.NewFlagSet("run", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		f.Declare(fs)
		targets, err := ParseInterleaved(fs, args[1:])
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return ExitOK
		}
		if err != nil {
			fmt.Fprintf(stderr, "%s run: %v\n", progName(), err)
			return ExitUsage
		}
		return cat.RunTargets(targets, f, stdout, stderr)
	}
	fmt.Fprintf(stderr, "%s: unknown command %q; commands: list, run, help\n", progName(), args[0])
	return ExitUsage
}

func progName() string {
	n := os.Args[0]
	if i := strings.LastIndexByte(n, '/'); i >= 0 {
		n = n[i+1:]
	}
	return n
}

// List writes one line per experiment: NAME  summary.
func (c *Catalogue) List(w io.Writer) {
	width := 0
	for _, e := range c.exps {
		width = max(width, len(e.Name))
	}
	for _, e := range c.exps {
		fmt.Fprintf(w, "%-*s  %s\n", width, e.Name, e.Summary)
	}
}

// DefaultOut is where `run` writes its captures unless told otherwise: a
// directory of the user's own in the current directory, never the
// repository's reference captures (scripts/regenerate-captures rewrites
// those, explicitly).
const DefaultOut = "statelab-captures"

// MaxTimeout is the longest --timeout `run` accepts for one experiment.
const MaxTimeout = time.Hour

// RunFlags are the flags of `run`.
type RunFlags struct {
	Out     string
	JSON    bool
	Seed    uint64
	Timeout time.Duration
	Verbose bool
	// HTML, when set, is the directory that receives the run as one
	// self-contained page, HTML/index.html (see Catalogue.SetHTML).
	HTML string
	// Width is the columns text reports fit; RunTargets sets it from
	// COLUMNS or the terminal (TermWidth) when it is 0. It is not a flag.
	Width int
}

// Declare declares the run flags on fs, with their defaults.
func (f *RunFlags) Declare(fs *flag.FlagSet) {
	fs.StringVar(&f.Out, "out", DefaultOut, "write captures under `DIR` (created if missing)")
	fs.BoolVar(&f.JSON, "json", false, "print one JSON object per experiment (JSON Lines) instead of the human report")
	fs.Uint64Var(&f.Seed, "seed", 0, "seed for the experiments' random choices (0: pick one and report it)")
	f.Timeout = 2 * time.Minute
	fs.Var((*timeoutValue)(&f.Timeout), "timeout", fmt.Sprintf("give up on an experiment after this long (more than 0s, up to %v)", MaxTimeout))
	fs.BoolVar(&f.Verbose, "v", false, "print progress lines")
	fs.StringVar(&f.HTML, "html", "", "also write the run as one self-contained web page, `DIR`/index.html (pictures drawn from the run, links to its captures)")
}

// timeoutValue is --timeout: a duration in (0, MaxTimeout].
type timeoutValue time.Duration

func (t *timeoutValue) String() string {
	if t == nil {
		return "0s"
	}
	return time.Duration(*t).String()
}

func (t *timeoutValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("want a duration such as 30s or 2m")
	}
	if err := checkTimeout(d); err != nil {
		return err
	}
	*t = timeoutValue(d)
	return nil
}

func (t *timeoutValue) Get() any { return time.Duration(*t) }

func checkTimeout(d time.Duration) error {
	if d <= 0 || d > MaxTimeout {
		return fmt.Errorf("give each experiment a positive time up to %v, such as 2m", MaxTimeout)
	}
	return nil
}

// CheckOutDir makes sure captures can be written under dir before anything
// runs: it creates dir if missing, then writes and removes a probe file.
// Its error says what to do.
func CheckOutDir(dir string) error { return checkWritable("--out", dir, "captures", DefaultOut) }

// checkWritable is CheckOutDir for the directory of flag, which receives
// what.
func checkWritable(flag, dir, what, example string) error {
	if dir == "" {
		return fmt.Errorf("%s is empty: name a directory for the %s, such as %s %s", flag, what, flag, example)
	}
	fail := func(err error) error {
		return fmt.Errorf("%s %s: cannot write %s there (%v); name a directory you can write (it is created if missing), such as %s /tmp/%s", flag, dir, what, err, flag, example)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fail(err)
	}
	probe, err := os.CreateTemp(dir, ".statelab-probe-*")
	if err != nil {
		return fail(err)
	}
	_, werr := probe.WriteString("probe\n")
	cerr := probe.Close()
	rerr := os.Remove(probe.Name())
	if err := errors.Join(werr, cerr, rerr); err != nil {
		return fail(err)
	}
	return nil
}

// ParseInterleaved accepts flags before, between and after positional
// arguments, so `run http --json` works as users type it. A flag it does
// not know is an error that names the nearest ones.
func ParseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, nearestFlag(fs, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// nearestFlag adds to flag's "flag provided but not defined: -X" the flags
// nearest X: at most three at the smallest Levenshtein distance, which is
// under 3 and under X's length.
func nearestFlag(fs *flag.FlagSet, err error) error {
	typed, ok := strings.CutPrefix(err.Error(), "flag provided but not defined: ")
	if !ok {
		return err
	}
	typed = strings.TrimLeft(typed, "-")
	var best []string
	bestD := 3
	fs.VisitAll(func(f *flag.Flag) {
		switch d := Distance(typed, f.Name); {
		case d < bestD:
			best, bestD = []string{"--" + f.Name}, d
		case d == bestD && len(best) > 0 && len(best) < 3:
			best = append(best, "--"+f.Name)
		}
	})
	if len(best) == 0 || bestD >= len(typed) {
		return err
	}
	return fmt.Errorf("%w; did you mean %s?", err, strings.Join(best, " or "))
}

// RunTargets is `run`: it selects the targets, enters the lab's namespace
// (re-executing this program there), runs them and reports, and returns
// the exit status. SIGINT, SIGTERM and SIGHUP (unless started under nohup,
// sandbox.StopSignals) end a run the same way: the
// experiment in progress is cancelled, its captures are written, and the
// status is 128+signal.
func (c *Catalogue) RunTargets(targets []string, f RunFlags, stdout, stderr io.Writer) int {
	prog := progName() + " run"
	if len(targets) == 0 {
		fmt.Fprintf(stderr, "%s: name an experiment, a group or all (groups: %s); `list` shows them\n", prog, strings.Join(c.Groups(), ", "))
		return ExitUsage
	}
	exps, err := c.Select(targets)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n`%s list` shows them all (groups: %s)\n", prog, err, progName(), strings.Join(c.Groups(), ", "))
		return ExitUsage
	}
	if f.Seed > MaxSeed {
		fmt.Fprintf(stderr, "%s: --seed %d is too large: seeds go up to %d (2^53−1), so that every JSON reader keeps them exact\n", prog, f.Seed, uint64(MaxSeed))
		return ExitUsage
	}
	if err := checkTimeout(f.Timeout); err != nil {
		fmt.Fprintf(stderr, "%s: --timeout %v: %v\n", prog, f.Timeout, err)
		return ExitUsage
	}
	if err := CheckOutDir(f.Out); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return ExitUsage
	}
	if f.HTML != "" {
		if c.html == nil {
			fmt.Fprintf(stderr, "%s: --html: this program was built without an HTML report writer (Catalogue.SetHTML)\n", prog)
			return ExitUsage
		}
		if err := checkWritable("--html", f.HTML, "the web page", "statelab-report"); err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", prog, err)
			return ExitUsage
		}
	}
	if f.Width <= 0 {
		f.Width = TermWidth(stdout, os.Getenv)
	}
	opts := Options{OutDir: f.Out, Seed: f.Seed, Timeout: f.Timeout}
	if f.Verbose {
		opts.Log = stderr
	}
	if opts.Seed == 0 {
		// Pick the seed before entering the sandbox so parent and child
		// agree, and say it so the run can be repeated.
		opts.Seed = NewSeed()
	}
	if err := sandbox.Enter(); err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return ExitUsage
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, sandbox.StopSignals...)
	defer signal.Stop(sigs)
	go func() {
		if s, ok := <-sigs; ok {
			cancel(interrupted{s.(syscall.Signal)})
		}
	}()
	reports := c.Run(ctx, exps, opts, func(r *Report) {
		if f.JSON {
			_ = r.WriteJSON(stdout)
		} else {
			_ = r.WriteTextOptions(stdout, TextOptions{Width: f.Width})
		}
	})
	if f.HTML != "" && len(reports) > 0 {
		if err := c.html(f.HTML, reports); err != nil {
			fmt.Fprintf(stderr, "%s: --html: %v\n", prog, err)
			return ExitUsage
		}
		fmt.Fprintf(stderr, "%s: the report as a web page: %s\n", progName(), filepath.Join(f.HTML, "index.html"))
	}
	return verdict(ctx, reports, len(exps), opts.Seed, stderr)
}

// interrupted is the cause of a run cancelled by a signal.
type interrupted struct{ syscall.Signal }

func (i interrupted) Error() string { return "interrupted by " + unix.SignalName(i.Signal) }

// verdict prints the run's last line and returns its exit status.
func verdict(ctx context.Context, reports []*Report, want int, seed uint64, stderr io.Writer) int {
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
		fmt.Fprintf(stderr, "%s: stopped by %s after %d of %d experiments; their captures are written\n", progName(), unix.SignalName(sig.Signal), ran, want)
		return 128 + int(sig.Signal)
	case len(envFailed) > 0:
		fmt.Fprintf(stderr, "%s: this machine cannot run:\n  %s\n", progName(), strings.Join(envFailed, "\n  "))
		return ExitUsage
	case len(failed) > 0:
		fmt.Fprintf(stderr, "%s: %d of %d experiments failed: %s (seed %d; rerun with --seed %d)\n",
			progName(), len(failed), ran, strings.Join(failed, ", "), seed, seed)
		return ExitFail
	}
	if ran == 1 {
		fmt.Fprintf(stderr, "%s: the experiment passed (seed %d)\n", progName(), seed)
		return ExitOK
	}
	fmt.Fprintf(stderr, "%s: all %d experiments passed (seed %d)\n", progName(), ran, seed)
	return ExitOK
}
