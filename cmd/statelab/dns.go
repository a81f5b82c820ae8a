package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/miekg/dns"
	"github.com/statelab/statelab/experiments/dnsexp"
	"github.com/statelab/statelab/lab"
	"github.com/statelab/statelab/lab/sandbox"
	"github.com/statelab/statelab/udpdns"
	"github.com/statelab/statelab/udpdns/dnsfault"
)

func init() {
	register(&command{
		name:    "dns serve",
		args:    "[--addr ADDR] [--zone FILE] [--delay D] [--jitter D] [--drop F] [--dup F]",
		summary: "Serve DNS over UDP from the built-in zone (lab., with NAME.synth.lab. for any NAME) or a zone file,\nin this shell's own network namespace, until interrupted. Prints the address when ready.",
		examples: []string{
			"statelab dns serve --addr 127.0.0.1:5300",
			"dig @127.0.0.1 -p 5300 example.lab A",
			"statelab dns serve --zone db.example --jitter 5ms --drop 0.1",
		},
		flags: func(fs *flag.FlagSet) {
			fs.String("addr", "127.0.0.1:5300", "listen on `ADDR` (port 0: any free port; not 5353, mDNS's)")
			fs.String("zone", "", "answer from the zone in master-file `FILE` instead of the built-in one")
			fs.Duration("delay", 0, "hold every answer this long")
			fs.Duration("jitter", 0, "add a random delay up to this long (reorders answers)")
			fs.Float64("drop", 0, "fraction of queries never answered")
			fs.Float64("dup", 0, "fraction of answers sent twice")
		},
		run: dnsServe,
	})
	register(&command{
		name:    "dns query",
		args:    "--server ADDR [-n N] [-c CONCURRENCY] [--type T] NAME...",
		summary: "Resolve NAMEs through the multiplexing client (one socket, many queries in flight), print the answers and the counters.",
		examples: []string{
			"statelab dns query --server 127.0.0.1:5300 example.lab www.example.lab",
			"statelab dns query --server 127.0.0.1:5300 -n 1000 -c 100 x.synth.lab",
		},
		flags: func(fs *flag.FlagSet) {
			fs.String("server", "", "the server's `ADDR` (host:port)")
			fs.Int("n", 1, "ask each name `N` times")
			fs.Int("c", 16, "queries in flight at once")
			fs.String("type", "A", "query `TYPE`")
			fs.Duration("timeout", 2*time.Second, "per-attempt timeout")
			fs.Int("retries", 2, "retries after a timeout")
			fs.Bool("0x20", false, "randomise QNAME case (DNS 0x20)")
			fs.Bool("q", false, "print only the counters")
		},
		run: dnsQuery,
	})
	register(&command{
		name:     "bench dns",
		args:     "[--duration D] [--rounds N] [-c CONCURRENCY] [--sockets N] [--json]",
		summary:  "Queries per second and latency of the udpdns client and of dnsperf against the same in-process server,\nin the same run, inside the lab's namespace, alternating for several rounds; prints both, the median\nratio and its spread. Needs dnsperf (apt-get install dnsperf).",
		examples: []string{"statelab bench dns", "statelab bench dns --duration 2s --rounds 5 -c 200 --json"},
		flags: func(fs *flag.FlagSet) {
			fs.Duration("duration", 2*time.Second, "length of each run")
			fs.Int("rounds", 3, "rounds of dnsperf then udpdns")
			fs.Int("c", 100, "queries in flight (udpdns goroutines; dnsperf -q)")
			fs.Int("sockets", 1, "udpdns client sockets")
			fs.Bool("json", false, "print JSON")
		},
		run: benchDNS,
	})
}

func flagStr(fs *flag.FlagSet, n string) string { return fs.Lookup(n).Value.String() }
func flagGet[T any](fs *flag.FlagSet, n string) T {
	return fs.Lookup(n).Value.(flag.Getter).Get().(T)
}

// serveContext ends `dns serve`: on SIGINT or SIGTERM (tests substitute a
// context they cancel).
var serveContext = func() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

func dnsServe(fs *flag.FlagSet, args []string) int {
	stdout, stderr := stdout, stderr // this command outlives its caller's view of the globals in tests
	if len(args) > 0 {
		fmt.Fprintf(stderr, "statelab dns serve: takes no arguments (got %q)\n", args)
		return exitUsage
	}
	var zone dns.Handler = udpdns.BuiltinZone()
	if f := flagStr(fs, "zone"); f != "" {
		z, err := udpdns.LoadZoneFile(f)
		if err != nil {
			fmt.Fprintf(stderr, "statelab dns serve: %v\n", err)
			return exitUsage
		}
		zone = z
	}
	// The zone wrapped in the faults the flags ask for (each a no-op at 0).
	draws := dnsfault.NewDraws(0)
	h := dnsfault.Chain(zone,
		dnsfault.Drop(flagGet[float64](fs, "drop"), draws),
		dnsfault.Duplicate(flagGet[float64](fs, "dup"), draws),
		dnsfault.Delay(flagGet[time.Duration](fs, "delay")),
		dnsfault.Jitter(flagGet[time.Duration](fs, "jitter"), draws))
	srv, err := udpdns.StartServer(udpdns.ServerConfig{Addr: flagStr(fs, "addr"), Handler: h})
	if err != nil {
		fmt.Fprintf(stderr, "statelab dns serve: %v (pick another --addr, or port 0)\n", err)
		return exitUsage
	}
	defer srv.Close()
	a := srv.Addr()
	ctx, stop := serveContext()
	defer stop()
	fmt.Fprintf(stdout, "listening on %s (udp)\ntry: dig @%s -p %d example.lab A\n", a, a.Addr(), a.Port())
	<-ctx.Done()
	srv.Close() // answers still held are abandoned: the counts are final
	st := srv.Stats()
	fmt.Fprintf(stderr, "received %d, answered %d, dropped %d, duplicated %d\n", st.Received, st.Answered, st.Unanswered, st.Copies)
	return exitOK
}

func dnsQuery(fs *flag.FlagSet, names []string) int {
	server, err := netip.ParseAddrPort(flagStr(fs, "server"))
	if err != nil || len(names) == 0 {
		fmt.Fprintf(stderr, "statelab dns query: need --server HOST:PORT and at least one NAME (%v)\n", err)
		return exitUsage
	}
	qtype, ok := dns.StringToType[flagStr(fs, "type")]
	if !ok {
		fmt.Fprintf(stderr, "statelab dns query: unknown --type %q\n", flagStr(fs, "type"))
		return exitUsage
	}
	n, conc := max(1, flagGet[int](fs, "n")), max(1, flagGet[int](fs, "c"))
	quiet := flagGet[bool](fs, "q")
	cl, err := udpdns.NewClient(udpdns.Config{Server: server, Timeout: flagGet[time.Duration](fs, "timeout"),
		Retries: flagGet[int](fs, "retries"), Case0x20: flagGet[bool](fs, "0x20")})
	if err != nil {
		fmt.Fprintf(stderr, "statelab dns query: %v\n", err)
		return exitUsage
	}
	defer cl.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	jobs := make(chan string)
	var mu sync.Mutex
	failed := 0
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range jobs {
				r, err := cl.Query(ctx, name, qtype)
				mu.Lock()
				if err != nil {
					failed++
					fmt.Fprintf(stderr, "%s: %v\n", name, err)
				} else if !quiet {
					fmt.Fprintf(stdout, ";; %s %s id=%#04x\n", dns.RcodeToString[r.Rcode], name, r.Id)
					for _, rr := range r.Answer {
						fmt.Fprintln(stdout, rr.String())
					}
				}
				mu.Unlock()
			}
		}()
	}
	for range n {
		for _, name := range names {
			select {
			case jobs <- name:
			case <-ctx.Done():
			}
		}
	}
	close(jobs)
	wg.Wait()
	st := cl.Stats()
	fmt.Fprintf(stdout, ";; client %v: %s\n", cl.LocalAddrs(), st)
	if failed > 0 {
		return exitFail
	}
	return exitOK
}

func benchDNS(fs *flag.FlagSet, args []string) int {
	if len(args) > 0 {
		fmt.Fprintf(stderr, "statelab bench dns: takes no arguments (got %q)\n", args)
		return exitUsage
	}
	if err := sandbox.Enter(); err != nil {
		fmt.Fprintf(stderr, "statelab bench dns: %v\n", err)
		return exitUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	conc := max(1, flagGet[int](fs, "c"))
	r, err := dnsexp.Bench(ctx, dnsexp.BenchConfig{Duration: flagGet[time.Duration](fs, "duration"), Rounds: flagGet[int](fs, "rounds"),
		InFlight: conc, Sockets: flagGet[int](fs, "sockets")})
	if err != nil {
		fmt.Fprintf(stderr, "statelab bench dns: %v\n", err)
		return exitUsage
	}
	rounds := len(r.Ratios)
	limits := fmt.Sprintf("what limits udpdns (not profiled; measured only the per-round ratios above): the in-process "+
		"miekg/dns server (one goroutine per packet) shares this machine's %d CPUs with both load generators and with whatever else runs, "+
		"so rounds vary; and each udpdns query costs a goroutine, a wakeup and a channel handoff on top of the sendto/recvfrom "+
		"that dnsperf's single C thread makes", runtime.NumCPU())
	if flagGet[bool](fs, "json") {
		_ = json.NewEncoder(stdout).Encode(map[string]any{"server": r.Server, "in_flight": conc, "rounds": rounds,
			"udpdns": r.Udpdns, "dnsperf": r.Dnsperf, "ratio": r.Ratio, "ratio_min": r.RatioMin, "ratio_max": r.RatioMax, "ratios": r.Ratios,
			"udpdns_rounds": r.UdpRounds, "dnsperf_rounds": r.DnsperfRounds,
			"note": "median round shown; dnsperf p50/p99 from a separate dnsperf -v run of the same length (per-query latencies); " + limits})
		return exitOK
	}
	fmt.Fprintf(stdout, "server %s (in-process miekg/dns), %d rounds of %v each, %d in flight (dnsperf -q %d -c 1 -T 1; udpdns %d goroutines)\n",
		r.Server, rounds, flagGet[time.Duration](fs, "duration"), conc, conc, conc)
	fmt.Fprintf(stdout, "  %-8s %10s %10s %9s %9s %9s\n", "tool", "qps", "completed", "avg ms", "p50 ms", "p99 ms")
	for _, b := range []dnsexp.BenchResult{r.Dnsperf, r.Udpdns} {
		fmt.Fprintf(stdout, "  %-8s %10.0f %10d %9.3f %9.3f %9.3f\n", b.Tool, b.QPS, b.Completed, b.AvgMS, b.P50MS, b.P99MS)
	}
	fmt.Fprintf(stdout, "  udpdns/dnsperf qps ratio: median %.2f×, spread %.2f–%.2f× over %d rounds %s\n", r.Ratio, r.RatioMin, r.RatioMax, rounds, fmtRatios(r.Ratios))
	fmt.Fprintf(stdout, "  (median round shown; dnsperf p50/p99 from a separate dnsperf -v run: printing each query slows it)\n")
	fmt.Fprintf(stdout, "  note: %s\n", limits)
	return exitOK
}

func fmtRatios(rs []float64) string {
	out := "["
	for i, r := range rs {
		if i > 0 {
			out += " "
		}
		out += fmt.Sprintf("%.2f", r)
	}
	return out + "]"
}

// dnsExperiments are the dns/ experiments of statelab's catalogue.
func dnsExperiments() []lab.Experiment { return dnsexp.Experiments() }
