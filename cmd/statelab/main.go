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
	"slices"
	"sort"
	"strings"
	"unicode"

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

// commands is every subcommand, by name, from the groups listed here:
// no file registers its own (each file's list is beside its commands).
var commands = byName(slices.Concat(
	runCommands(),  // list, run
	tcpCommands(),  // bench tcp
	dnsCommands(),  // dns serve, dns query, bench dns
	quicCommands(), // quic serve, quic get, bench quic
	httpCommands(), // http serve, bench http
	diagramCommands(),
))

func byName(cs []*command) map[string]*command {
	m := make(map[string]*command, len(cs))
	for _, c := range cs {
		if m[c.name] != nil {
			panic("statelab: two commands named " + c.name)
		}
		m[c.name] = c
	}
	return m
}

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
		if len(args) == 1 {
			usage(stdout)
			return exitOK
		}
		want := strings.Join(args[1:], " ")
		if c, ok := lookup(want); ok {
			c.usage(stdout)
			return exitOK
		}
		if len(args) == 2 && isGroup(args[1]) {
			groupUsage(stdout, args[1])
			return exitOK
		}
		fmt.Fprintf(stderr, "statelab help: no command %q%s\nRun `statelab help` for the list.\n", want, suggest(args[1:]))
		return exitUsage
	}
	c, rest, ok := resolve(args)
	if !ok {
		if isGroup(name) {
			if len(args) > 1 {
				fmt.Fprintf(stderr, "statelab: %q is not a %s command%s\n\n", strings.Join(args[:2], " "), name, suggest(args))
			}
			groupUsage(stderr, name)
			return exitUsage
		}
		fmt.Fprintf(stderr, "statelab: unknown command %q%s\nRun `statelab help` for the list.\n", name, suggest(args))
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

// isGroup reports whether word begins commands of more than one word
// (bench, dns, http, quic): typed alone, it lists them.
func isGroup(word string) bool {
	for n := range commands {
		if g, _, ok := strings.Cut(n, " "); ok && g == word {
			return true
		}
	}
	return false
}

// groupUsage lists the commands of a group, as git does for a group word.
func groupUsage(w io.Writer, group string) {
	fmt.Fprintf(w, "Usage: statelab %s COMMAND [flags]\n\n%s commands:\n", group, group)
	var names []string
	for n := range commands {
		if strings.HasPrefix(n, group+" ") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	writeSummaries(w, names)
	fmt.Fprintf(w, "\nRun `statelab help %s COMMAND` for a command's flags.\n", group)
}

// suggest names the commands closest to a mistyped one (Levenshtein
// distance under 3, lab.Distance, as the catalogue suggests experiments), or the `run`
// that a typed experiment or group name means; "" when nothing is close.
func suggest(args []string) string {
	if len(args) == 0 {
		return ""
	}
	first := strings.ToLower(args[0])
	if _, err := catalogue().Select([]string{first}); err == nil && !isGroup(first) {
		return fmt.Sprintf("; did you mean `statelab run %s`?", first)
	}
	type candidate struct{ match, show string }
	candidates := []candidate{{"help", "help"}}
	groups := map[string]bool{}
	for n := range commands {
		candidates = append(candidates, candidate{n, n})
		if g, _, ok := strings.Cut(n, " "); ok && !groups[g] {
			groups[g] = true
			candidates = append(candidates, candidate{g, g})
		}
	}
	for _, e := range catalogue().All() {
		candidates = append(candidates, candidate{e.Name, "`statelab run " + e.Name + "`"})
	}
	sort.Slice(candidates, func(i, j int) bool { return candidates[i].match < candidates[j].match })
	var best []string
	bestD := 3
	for _, cand := range candidates {
		k := strings.Count(cand.match, " ") + 1
		if k > len(args) || (len(args) > 1 && cand.match == first && isGroup(cand.match)) {
			continue // "bench tpc" is nearer bench tcp than bench
		}
		d := lab.Distance(strings.ToLower(strings.Join(args[:k], " ")), cand.match)
		switch {
		case d < bestD:
			best, bestD = []string{cand.show}, d
		case d == bestD && len(best) < 3:
			best = append(best, cand.show)
		}
	}
	if len(best) == 0 {
		return ""
	}
	return "; did you mean " + strings.Join(best, " or ") + "?"
}

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
	writeSummaries(w, names)
	fmt.Fprintf(w, `
Examples:
  statelab list
  statelab run http/calculator
  statelab run all --out /tmp/caps --json

Run `+"`statelab help COMMAND`"+` or `+"`statelab COMMAND --help`"+` for a command's flags.
`)
}

// writeSummaries writes each command's name and the whole first sentence of
// its summary, wrapped to fit 80 columns.
func writeSummaries(w io.Writer, names []string) {
	const indent, width = 17, 80
	for _, n := range names {
		line := fmt.Sprintf("  %-14s", n)
		for _, word := range strings.Fields(firstSentence(commands[n].summary)) {
			if len(line)+1+len(word) > width && len(line) > indent {
				fmt.Fprintln(w, line)
				line = strings.Repeat(" ", indent-1)
			}
			line += " " + word
		}
		fmt.Fprintln(w, line)
	}
}

// firstSentence is s up to the first period that ends a sentence: outside
// parentheses and followed by white space and a capital letter, or the end.
func firstSentence(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	depth := 0
	for i, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth = max(0, depth-1)
		case '.':
			if depth == 0 && i+2 < len(s) && s[i+1] == ' ' && unicode.IsUpper(rune(s[i+2])) {
				return s[:i+1]
			}
		}
	}
	return s
}
