package httpstate

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSessionCodecRoundTrips(t *testing.T) {
	deadline := time.Date(2026, 11, 25, 12, 0, 0, 123456789, time.UTC)
	tests := []struct {
		name   string
		values map[string]any
	}{
		{"empty session", map[string]any{}},
		{"fresh session", map[string]any{"state": SessionState{}}},
		{"session with history and stats", map[string]any{"state": SessionState{HasLast: true, LastResult: 27, Operations: 3,
			History:  []HistoryEntry{{Op: Add, A: 10, B: 5, Result: 15}, {Op: Multiply, A: 15, B: 2, Result: 30, PrevHasLast: true, PrevResult: 15}},
			Undos:    1,
			OpCounts: map[Op]int{Add: 1, Multiply: 1, Subtract: 1}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := sessionCodec{}.Encode(deadline, tt.values)
			if err != nil {
				t.Fatal(err)
			}
			d, got, err := sessionCodec{}.Decode(b)
			if err != nil {
				t.Fatal(err)
			}
			if !d.Equal(deadline) || !reflect.DeepEqual(got, tt.values) {
				t.Errorf("round trip of %s: deadline %v values %#v, want %v %#v", b, d, got, deadline, tt.values)
			}
		})
	}
}

func TestSessionCodecRefusesWhatItCannotStore(t *testing.T) {
	tests := []struct {
		name   string
		values map[string]any
	}{
		{"another key", map[string]any{"cart": SessionState{}}},
		{"another type under state", map[string]any{"state": 42}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := (sessionCodec{}).Encode(time.Now(), tt.values); err == nil || !strings.Contains(err.Error(), "only") {
				t.Errorf("Encode(%v) = %v, want a refusal", tt.values, err)
			}
		})
	}
	if _, _, err := (sessionCodec{}).Decode([]byte("\x0d\xff gob?")); err == nil || errors.Unwrap(err) == nil {
		t.Errorf("Decode of garbage = %v, want a wrapped error", err)
	}
}
