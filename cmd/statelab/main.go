// Command statelab runs the protocol state laboratory: experiments that show
// the state protocols and servers keep, each ending in checks that pass or
// fail and a capture to open in Wireshark.
//
//	statelab list
//	statelab run [--out DIR] [--json] [--seed N] TARGET...
//
// Run `statelab help` for every command.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/sandbox"
	"github.com/statelab/statelab/lab/subproc"
)

// Exit statuses, the CLI's contract.
const (
	exitOK    = 0
	exitFail  = 1 // a check failed
	exitUsage = 2 // bad usage or an environment that cannot run the lab
)

// command is one subcommand.
type command struct {
	name     string
	args     string // synopsis after the name
	summary  string
	examples []string
	flags    func(fs *flag.FlagSet) // declares the flags; nil for none
	run      func(fs *flag.FlagSet, args []string) int
}

var commands = map[string]*command{}

func register(c *command) { commands[c.name] = c }

func main() {
	subproc.Dispatch(catalogue().Roles()) // started as a lab server process: run it and exit
	code := Main(os.Args[1:], os.Stdout, os.Stderr)
	sandbox.RemoveTemp() // the run's temporary files, if this is the lab process
	os.Exit(code)
}

var stdout, stderr io.Writer = os.Stdout, os.Stderr

// Main runs the CLI and returns its exit status.
func Main(args []string, out, errOut io.Writer) int {
	stdout, stderr = out, errOut
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if c, ok := lookup(strings.Join(args[1:], " ")); ok {
				c.usage(stdout)
				return exitOK
			}
		}
		usage(stdout)
		return exitOK
	}
	c, rest, ok := resolve(args)
	if !ok {
		fmt.Fprintf(stderr, "statelab: unknown command %q; run `statelab help` for the list\n", strings.Join(args[:min(2, len(args))], " "))
		return exitUsage
	}
	fs := flag.NewFlagSet("statelab "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if c.flags != nil {
		c.flags(fs)
	}
	pos, err := lab.ParseInterleaved(fs, rest)
	if errors.Is(err, flag.ErrHelp) {
		c.usage(stdout)
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "statelab %s: %v\nRun `statelab %s --help` for usage.\n", c.name, err, c.name)
		return exitUsage
	}
	return c.run(fs, pos)
}

// resolve finds the longest command name that prefixes args ("dns serve").
func resolve(args []string) (*command, []string, bool) {
	for n := min(3, len(args)); n >= 1; n-- {
		if c, ok := commands[strings.Join(args[:n], " ")]; ok {
			return c, args[n:], true
		}
	}
	return nil, nil, false
}

func lookup(name string) (*command, bool) { c, ok := commands[name]; return c, ok }

func (c *command) usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: statelab %s %s\n\n%s\n", c.name, c.args, c.summary)
	if c.flags != nil {
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		c.flags(fs)
		var has bool
		fs.VisitAll(func(*flag.Flag) { has = true })
		if has {
			fmt.Fprintf(w, "\nFlags:\n")
			fs.SetOutput(w)
			fs.PrintDefaults()
		}
	}
	if len(c.examples) > 0 {
		fmt.Fprintf(w, "\nExamples:\n")
		for _, e := range c.examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `statelab — a protocol state laboratory: see the state that TCP, DNS, QUIC and
HTTP servers keep, in experiments that end in PASS/FAIL checks and captures
for Wireshark. Experiments run in a private network namespace of their own;
no root needed.

Usage: statelab COMMAND [flags] [args]

Commands:
`)
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-14s %s\n", n, firstLine(commands[n].summary))
	}
	fmt.Fprintf(w, `
Examples:
  statelab list
  statelab run http/calculator
  statelab run all --out /tmp/caps --json

Run `+"`statelab help COMMAND`"+` or `+"`statelab COMMAND --help`"+` for a command's flags.
`)
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }
