package quicexp

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/statelab/statelab/lab/labtest"
)

// tshark prints quic.frame_type in decimal.
const (
	frameTypePathChallenge = "26" // 0x1a
	frameTypePathResponse  = "27" // 0x1b
)

// frameRow is one decrypted QUIC frame as tshark prints it.
type frameRow struct {
	client   netip.AddrPort // the client end of the datagram's 4-tuple
	src, dst netip.AddrPort
	size     int // UDP payload bytes
	toSrv    bool
	types    []string
	chal     []string
	resp     []string
}

// decryptedFrames reads a capture with tshark using only the secrets
// embedded in it (no key log file is given) and returns every datagram's
// frame types with its client 4-tuple.
func decryptedFrames(t *testing.T, path string, server uint16) []frameRow {
	t.Helper()
	out := labtest.Tshark(t, path, "-Y", "quic", "-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,",
		"-e", "ip.src", "-e", "udp.srcport", "-e", "ip.dst", "-e", "udp.dstport",
		"-e", "quic.frame_type", "-e", "quic.path_challenge.data", "-e", "quic.path_response.data", "-e", "udp.length")
	var rows []frameRow
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) < 8 {
			continue
		}
		src, err1 := netip.ParseAddrPort(f[0] + ":" + f[1])
		dst, err2 := netip.ParseAddrPort(f[2] + ":" + f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		r := frameRow{src: src, dst: dst, types: split(f[4]), chal: split(f[5]), resp: split(f[6])}
		if n, err := strconv.Atoi(f[7]); err == nil {
			r.size = n - 8
		}
		if dst.Port() == server {
			r.client, r.toSrv = src, true
		} else {
			r.client = dst
		}
		rows = append(rows, r)
	}
	return rows
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func has(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// Wireshark decrypts the capture with the embedded decryption-secrets block
// alone and finds PATH_CHALLENGE (0x1a) and PATH_RESPONSE (0x1b) — with the
// same data — and the connection's traffic on two different client
// 4-tuples.
func TestTsharkDecryptsPathValidation(t *testing.T) {
	labtest.NeedTool(t, "tshark")
	for _, tc := range []struct {
		name string
		// wantValidated is how many client 4-tuples must carry both
		// PATH_CHALLENGE and PATH_RESPONSE frames.
		wantValidated int
		// rebinding: check the new 4-tuple's validation frame by frame.
		rebinding bool
	}{
		{"quic/rebind-port", 1, true},
		{"quic/rebind-addr", 1, true},
		{"quic/migrate", 3, false},
	} {
		t.Run(strings.TrimPrefix(tc.name, "quic/"), func(t *testing.T) {
			r := labtest.RunExperiment(t, experiment(tc.name), 3)
			path := r.Captures[0]
			if n := labtest.TsharkCount(t, path, "quic.decryption_failed || _ws.malformed"); n != 0 {
				t.Errorf("%d frames tshark could not decrypt or parse", n)
			}
			server := serverPort(t, path)
			tuples := map[netip.AddrPort]bool{}
			chal := map[netip.AddrPort][]string{}
			resp := map[netip.AddrPort][]string{}
			rows := decryptedFrames(t, path, server)
			if tc.rebinding {
				checkRebindFrames(t, rows)
			}
			for _, row := range rows {
				if len(row.types) > 0 { // decrypted
					tuples[row.client] = true
				}
				if !row.toSrv && has(row.types, frameTypePathChallenge) {
					chal[row.client] = append(chal[row.client], row.chal...)
				}
				if row.toSrv && has(row.types, frameTypePathResponse) {
					resp[row.client] = append(resp[row.client], row.resp...)
				}
			}
			if len(tuples) < 2 {
				t.Errorf("decrypted frames on %d client 4-tuples, want ≥ 2: %v", len(tuples), tuples)
			}
			validated := 0
			for c, cs := range chal {
				for _, d := range resp[c] {
					if has(cs, d) {
						validated++
						break
					}
				}
			}
			if validated < tc.wantValidated {
				t.Errorf("%d client 4-tuples with a PATH_CHALLENGE and its PATH_RESPONSE, want ≥ %d (challenges %v, responses %v)", validated, tc.wantValidated, chal, resp)
			}
		})
	}
}

// checkRebindFrames checks a NAT rebinding from the decrypted capture
// alone: the first server datagram to the new client 4-tuple carries
// PATH_CHALLENGE, the client's PATH_RESPONSE on the new 4-tuple echoes its
// data, and before that response the server sent the new 4-tuple at most
// 3× the bytes it received from it (RFC 9000 §8.1).
func checkRebindFrames(t *testing.T, rows []frameRow) {
	t.Helper()
	var order []netip.AddrPort
	for _, r := range rows {
		if !slices.Contains(order, r.client) {
			order = append(order, r.client)
		}
	}
	if len(order) != 2 {
		t.Fatalf("a rebinding shows 2 client 4-tuples, got %v", order)
	}
	newTuple := order[1]
	first := slices.IndexFunc(rows, func(r frameRow) bool { return !r.toSrv && r.client == newTuple })
	if first < 0 {
		t.Fatalf("no server datagram to the new 4-tuple %s", newTuple)
	}
	if !has(rows[first].types, frameTypePathChallenge) || len(rows[first].chal) == 0 {
		t.Fatalf("first server datagram to %s has frame types %v, want PATH_CHALLENGE (%s)", newTuple, rows[first].types, frameTypePathChallenge)
	}
	data := rows[first].chal[0]
	resp := slices.IndexFunc(rows, func(r frameRow) bool {
		return r.toSrv && r.client == newTuple && has(r.types, frameTypePathResponse) && has(r.resp, data)
	})
	if resp < 0 {
		t.Fatalf("no PATH_RESPONSE from %s echoing the challenge %s", newTuple, data)
	}
	if resp < first {
		t.Errorf("PATH_RESPONSE (row %d) before the challenge (row %d)", resp, first)
	}
	var ds []*Datagram
	for i, r := range rows[:resp] {
		if r.size <= 0 {
			t.Fatalf("row %d: no UDP length", i)
		}
		ds = append(ds, &Datagram{Index: i, Src: r.src, Dst: r.dst, Size: r.size})
	}
	sent, recv, worst, ok := antiAmplification(ds, newTuple)
	if !ok || sent == 0 {
		t.Errorf("before the PATH_RESPONSE the server sent %d bytes to %s and received %d (worst ratio %.2f), want ≤ 3×", sent, newTuple, recv, worst)
	}
	t.Logf("new 4-tuple %s: challenge %s in datagram %d, response in datagram %d; %d bytes sent ≤ 3×%d received", newTuple, data, first+1, resp+1, sent, recv)
}

// serverPort is the UDP port of the capture's first Initial's destination.
func serverPort(t *testing.T, path string) uint16 {
	out := strings.TrimSpace(labtest.Tshark(t, path, "-Y", "quic.long.packet_type == 0", "-c", "1", "-T", "fields", "-e", "udp.dstport"))
	first := strings.Split(out, "\n")[0]
	var p uint16
	for _, c := range first {
		if c < '0' || c > '9' {
			break
		}
		p = p*10 + uint16(c-'0')
	}
	if p == 0 {
		t.Fatalf("no Initial packet in %s", path)
	}
	return p
}
