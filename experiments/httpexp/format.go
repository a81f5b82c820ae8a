package httpexp

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab/capture"
)

// How the experiments word what they saw, in comments, ladders and checks.

// short is a session token's first 8 characters.
func short(token string) string {
	if len(token) <= 8 {
		return token
	}
	return token[:8] + "…"
}

// opOf returns the op field of a JSON calculator request, if any.
func opOf(body []byte) string {
	var v struct{ Op string }
	if json.Unmarshal(body, &v) != nil {
		return ""
	}
	return v.Op
}

// replySummary shortens a JSON reply to key=value pairs: result=15.
func replySummary(body []byte) string {
	const maxReplyValue = 40
	var v map[string]any
	if json.Unmarshal(body, &v) != nil {
		return strings.TrimSpace(string(body))
	}
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		val := fmt.Sprint(v[k])
		switch v[k].(type) {
		case map[string]any, []any: // as JSON, never Go's map[…]
			if b, err := json.Marshal(v[k]); err == nil {
				val = string(b)
			}
			// Data is abbreviated (the capture has it whole); an error
			// or a code never is.
			if r := []rune(val); len(r) > maxReplyValue {
				val = string(r[:maxReplyValue]) + "…"
			}
		}
		parts = append(parts, k+"="+val)
	}
	return strings.Join(parts, " ")
}

// replyNote is what a reply said, for a step's server state: "200
// result=30", "401 no_session".
func replyNote(p *played) string {
	if p.Err != nil {
		return "no reply"
	}
	if p.Rep.Code != "" {
		return fmt.Sprintf("%d %s", p.Rep.Status, p.Rep.Code)
	}
	var v struct{ Result *float64 }
	if json.Unmarshal(p.Rep.Body, &v) == nil && v.Result != nil {
		return fmt.Sprintf("%d result=%g", p.Rep.Status, *v.Result)
	}
	return fmt.Sprint(p.Rep.Status)
}

func trimBody(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] == '\n' {
		b = b[:len(b)-1]
	}
	if len(b) > 80 {
		return append(append([]byte(nil), b[:80]...), "…"...)
	}
	return b
}

func trimString(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// problems lists the first three problems found, for a check's detail.
func problems(bad []string) string {
	if len(bad) == 0 {
		return ""
	}
	if len(bad) > 3 {
		bad = append(bad[:3:3], fmt.Sprintf("%d more", len(bad)-3))
	}
	return "; " + strings.Join(bad, "; ")
}

// tcpFlags names a segment's flags as Wireshark does: "SYN, ACK".
func tcpFlags(f uint8) string {
	var out []string
	for _, fl := range []struct {
		bit  uint8
		name string
	}{{capture.FlagFIN, "FIN"}, {capture.FlagSYN, "SYN"}, {capture.FlagRST, "RST"}, {capture.FlagPSH, "PSH"}, {capture.FlagACK, "ACK"}} {
		if f&fl.bit != 0 {
			out = append(out, fl.name)
		}
	}
	if len(out) == 0 {
		return "no flags"
	}
	return strings.Join(out, ", ")
}

// idx1 numbers clients from 1, as the report does.
func idx1(xs []int) []int {
	out := make([]int, len(xs))
	for i, x := range xs {
		out[i] = x + 1
	}
	return out
}

// storeWhere names where a --store URL keeps sessions: "sqlite", "redis",
// or the process's memory when there is none.
func storeWhere(store string) string {
	if store == "" {
		return "process memory"
	}
	u, err := httpstate.ParseStoreURL(store)
	if err != nil {
		return store
	}
	return string(u.Kind)
}
