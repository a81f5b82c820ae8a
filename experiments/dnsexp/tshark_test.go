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
