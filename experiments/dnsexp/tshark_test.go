package dnsexp

import (
	"os"
	"strings"
	"testing"

	"github.com/statelab/statelab/lab/labtest"
)

// Wireshark's own dissector pairs every answered query in each capture with
// its response (dns.response_in), and the pair agrees on the ID.
func TestTsharkPairsEveryAnsweredQuery(t *testing.T) {
	labtest.NeedTool(t, "tshark")
	for _, name := range []string{"dns/id-matching", "dns/loss", "dns/server-restart", "dns/client-gone", "dns/spoofing"} {
		t.Run(name, func(t *testing.T) {
			r := runExperiment(t, name)
			if len(r.Captures) != 1 {
				t.Fatalf("captures %v", r.Captures)
			}
			if st, err := os.Stat(r.Captures[0]); err != nil || st.Size() > 1<<20 {
				t.Fatalf("capture %v: %v (must be under 1 MiB)", st, err)
			}
			out := labtest.Tshark(t, r.Captures[0], "-2", "-Y", "dns && !icmp", "-T", "fields", "-E", "separator=|",
				"-e", "frame.number", "-e", "ip.src", "-e", "udp.srcport", "-e", "ip.dst", "-e", "udp.dstport",
				"-e", "dns.flags.response", "-e", "dns.id", "-e", "dns.response_in")
			frames := map[string][]string{}
			var queries [][]string
			answered := map[string]bool{} // "id|client port" of responses from the server's port
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				f := strings.Split(line, "|")
				if len(f) < 8 {
					continue
				}
				frames[f[0]] = f
				if f[5] == "False" || f[5] == "0" {
					queries = append(queries, f)
				} else {
					answered[f[6]+"|"+f[1]+":"+f[2]+">"+f[3]+":"+f[4]] = true
				}
			}
			paired := 0
			for _, q := range queries {
				key := q[6] + "|" + q[3] + ":" + q[4] + ">" + q[1] + ":" + q[2]
				if !answered[key] {
					continue
				}
				resp := frames[q[7]]
				if resp == nil || resp[6] != q[6] {
					t.Errorf("query frame %s (id %s) answered on the wire but tshark pairs it with %q", q[0], q[6], q[7])
					continue
				}
				paired++
			}
			if paired == 0 {
				t.Fatal("no query paired")
			}
			t.Logf("%d queries, %d paired by tshark", len(queries), paired)
		})
	}
}

// Wireshark reads the cookies as the lab does: the client's first query
// carries a client cookie only, its later ones a 16-byte server cookie
// too; and dns/truncation's big answer is truncated over UDP (TC) and
// whole over TCP.
func TestTsharkReadsCookiesAndTruncation(t *testing.T) {
	labtest.NeedTool(t, "tshark")
	t.Run("dns/cookies", func(t *testing.T) {
		r := runExperiment(t, "dns/cookies")
		out := labtest.Tshark(t, r.Captures[0], "-Y", "dns.flags.response == 0 && udp.dstport == 53 && dns.qry.name matches \"^(learn|forged|restart)\"",
			"-T", "fields", "-E", "separator=|", "-e", "dns.opt.cookie.client", "-e", "dns.opt.cookie.server")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) < 3 {
			t.Fatalf("tshark found %d client queries:\n%s", len(lines), out)
		}
		for i, line := range lines {
			f := strings.Split(line, "|")
			client, server := f[0], ""
			if len(f) > 1 {
				server = f[1]
			}
			server = strings.ReplaceAll(strings.TrimPrefix(server, "<MISSING>"), ":", "")
			client = strings.ReplaceAll(client, ":", "")
			wantServer := 32
			if i == 0 {
				wantServer = 0
			}
			if len(client) != 16 || len(server) != wantServer {
				t.Errorf("query %d: client cookie %q, server cookie %q (want %d hex digits)", i, client, server, wantServer)
			}
		}
	})
	t.Run("dns/truncation", func(t *testing.T) {
		r := runExperiment(t, "dns/truncation")
		out := labtest.Tshark(t, r.Captures[0], "-Y", "dns.flags.response == 1 && dns.qry.name == \"big.lab\"",
			"-T", "fields", "-E", "separator=|", "-e", "udp.srcport", "-e", "tcp.srcport", "-e", "dns.flags.truncated", "-e", "dns.count.answers")
		got := strings.Fields(strings.TrimSpace(out))
		if len(got) != 2 || !strings.HasPrefix(got[0], "53||1|") || !strings.HasPrefix(got[1], "|53|0|16") {
			t.Errorf("tshark's answers to big.lab (udp port|tcp port|TC|answers): %q", got)
		}
	})
}
