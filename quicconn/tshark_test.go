package quicconn

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/statelab/statelab/internal/labtest"
)

// tshark prints quic.frame_type in decimal.
const (
	frameTypePathChallenge = "26" // 0x1a
	frameTypePathResponse  = "27" // 0x1b
)

// frameRow is one decrypted QUIC frame as tshark prints it.
type frameRow struct {
	client netip.AddrPort // the client end of the datagram's 4-tuple
	toSrv  bool
	types  []string
	chal   []string
	resp   []string
}

// decryptedFrames reads a capture with tshark using only the secrets
// embedded in it (no key log file is given) and returns every datagram's
// frame types with its client 4-tuple.
func decryptedFrames(t *testing.T, path string, server uint16) []frameRow {
	t.Helper()
	out := labtest.Tshark(t, path, "-Y", "quic", "-T", "fields", "-E", "separator=|", "-E", "occurrence=a", "-E", "aggregator=,",
		"-e", "ip.src", "-e", "udp.srcport", "-e", "ip.dst", "-e", "udp.dstport",
		"-e", "quic.frame_type", "-e", "quic.path_challenge.data", "-e", "quic.path_response.data")
	var rows []frameRow
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		f := strings.Split(line, "|")
		if len(f) < 7 {
			continue
		}
		src, err1 := netip.ParseAddrPort(f[0] + ":" + f[1])
		dst, err2 := netip.ParseAddrPort(f[2] + ":" + f[3])
		if err1 != nil || err2 != nil {
			continue
		}
		r := frameRow{types: split(f[4]), chal: split(f[5]), resp: split(f[6])}
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
	}{
		{"quic/rebind-port", 1},
		{"quic/rebind-addr", 1},
		{"quic/migrate", 3},
	} {
		t.Run(strings.TrimPrefix(tc.name, "quic/"), func(t *testing.T) {
			r := labtest.RunExperiment(t, tc.name, 3)
			path := r.Captures[0]
			if n := labtest.TsharkCount(t, path, "quic.decryption_failed || _ws.malformed"); n != 0 {
				t.Errorf("%d frames tshark could not decrypt or parse", n)
			}
			server := serverPort(t, path)
			tuples := map[netip.AddrPort]bool{}
			chal := map[netip.AddrPort][]string{}
			resp := map[netip.AddrPort][]string{}
			for _, row := range decryptedFrames(t, path, server) {
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
