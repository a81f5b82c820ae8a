package udpdns

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"strconv"

	"github.com/statelab/statelab/lab/subproc"
)

// ServerRole is the internal/subproc role that runs a Server as a process
// of its own, so an experiment can kill it and start another: see
// StartServerProcess.
const ServerRole = "udpdns-server"

var roles = subproc.Roles{ServerRole: runServerProcess}

// ServerProcessArgs renders cfg as the role's arguments. Zone and Policy
// are not data and cannot cross; zoneFile, when set, names a master file
// the child loads instead of the built-in zone.
func ServerProcessArgs(cfg ServerConfig, zoneFile string) []string {
	a := []string{"-addr", cfg.Addr, "-seed", strconv.FormatUint(cfg.Seed, 10),
		"-delay", cfg.Delay.String(), "-jitter", cfg.Jitter.String(),
		"-drop", strconv.FormatFloat(cfg.DropRate, 'g', -1, 64), "-dup", strconv.FormatFloat(cfg.DupRate, 'g', -1, 64)}
	if cfg.AnswerFrom != "" {
		a = append(a, "-answer-from", cfg.AnswerFrom)
	}
	if cfg.TallyFile != "" {
		a = append(a, "-tally", cfg.TallyFile)
	}
	if zoneFile != "" {
		a = append(a, "-zone", zoneFile)
	}
	return a
}

// parseServerArgs is ServerProcessArgs backwards.
func parseServerArgs(args []string) (ServerConfig, error) {
	var cfg ServerConfig
	fs := flag.NewFlagSet(ServerRole, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:0", "listen address")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "random seed")
	fs.DurationVar(&cfg.Delay, "delay", 0, "answer delay")
	fs.DurationVar(&cfg.Jitter, "jitter", 0, "random extra delay")
	fs.Float64Var(&cfg.DropRate, "drop", 0, "fraction dropped")
	fs.Float64Var(&cfg.DupRate, "dup", 0, "fraction duplicated")
	fs.StringVar(&cfg.AnswerFrom, "answer-from", "", "answer from this address")
	fs.StringVar(&cfg.TallyFile, "tally", "", "append a byte per datagram written to this file")
	zone := fs.String("zone", "", "zone file")
	if err := fs.Parse(args); err != nil {
		return cfg, fmt.Errorf("udpdns: %s arguments: %w", ServerRole, err)
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("udpdns: %s: unexpected arguments %q", ServerRole, fs.Args())
	}
	if *zone != "" {
		z, err := LoadZoneFile(*zone)
		if err != nil {
			return cfg, err
		}
		cfg.Zone = z
	}
	return cfg, nil
}

// runServerProcess is the child's body: serve until SIGTERM.
func runServerProcess(ctx context.Context, args []string, ready func(string)) error {
	cfg, err := parseServerArgs(args)
	if err != nil {
		return err
	}
	srv, err := StartServer(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	ready(srv.Addr().String())
	<-ctx.Done()
	return nil
}

// StartServerProcess starts a Server as a separate process (this binary
// again, as ServerRole) and returns it once it serves, with its address.
// Stop it with Proc.Stop (SIGTERM) or Proc.Kill (SIGKILL).
func StartServerProcess(ctx context.Context, cfg ServerConfig, zoneFile string) (*subproc.Proc, netip.AddrPort, error) {
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	p, err := subproc.Start(ctx, ServerRole, ServerProcessArgs(cfg, zoneFile)...)
	if err != nil {
		return nil, netip.AddrPort{}, fmt.Errorf("udpdns: server process: %w", err)
	}
	addr, err := netip.ParseAddrPort(p.Ready)
	if err != nil {
		_ = p.Kill()
		return nil, netip.AddrPort{}, fmt.Errorf("udpdns: server process said %q, not an address: %w", p.Ready, err)
	}
	return p, addr, nil
}
