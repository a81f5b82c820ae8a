package lab

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// ErrText words an error for a report: its message, or "none" for nil
// (never Go's "<nil>").
func ErrText(err error) string {
	if err == nil {
		return "none"
	}
	return err.Error()
}

// KV words a map for a report as "k1: v1, k2: v2" in key order (never Go's
// "map[k1:v1 k2:v2]"); a slice value is written as its items joined by
// commas.
func KV[K cmp.Ordered, V any](m map[K]V) string {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		v := fmt.Sprint(m[k])
		if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
			v = strings.Join(strings.Fields(v[1:len(v)-1]), ",")
		}
		parts = append(parts, fmt.Sprintf("%v: %s", k, v))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// OK words the outcome of a call for a report: "ok", or the error's
// message.
func OK(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// List words a list for a report: its items joined by ", ", or "none"
// (never Go's "[]" or "[a b]").
func List[T any](xs []T) string {
	if len(xs) == 0 {
		return "none"
	}
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprint(x)
	}
	return strings.Join(parts, ", ")
}
