package httpstate

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

var testSecret = bytes.Repeat([]byte{0x5a}, MinTokenSecret)

// testCodec is a codec on a fixed clock.
func testCodec(t testing.TB, now time.Time) *TokenCodec {
	t.Helper()
	c, err := NewTokenCodec(testSecret, 10*time.Minute, func() time.Time { return now })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var testNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// workedState is ((10 + 5) × 2) − 3 with its history.
func workedState() SessionState {
	var st SessionState
	st.record(Add, 10, 5, 15)
	st.record(Multiply, 15, 2, 30)
	st.record(Subtract, 30, 3, 27)
	return st
}

// A token carries the whole session back: last result, history, counts,
// session id, issue time and expiry.
func TestTokenRoundTrip(t *testing.T) {
	c := testCodec(t, testNow)
	st := workedState()
	tok, err := c.Issue("sid-1", st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if got.SID != "sid-1" || got.State.LastResult != 27 || len(got.State.History) != 3 || got.State.OpCounts[Add] != 1 ||
		!got.Issued.Equal(testNow) || !got.Expires.Equal(testNow.Add(10*time.Minute)) {
		t.Errorf("verified %+v", got)
	}
}

// Every way a token can be wrong is refused with its own error.
func TestTokenRefusals(t *testing.T) {
	c := testCodec(t, testNow)
	good, _ := c.Issue("sid-1", workedState())
	parts := strings.Split(good, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString(bytes.Replace(payload, []byte(`"last_result":27`), []byte(`"last_result":1000`), 1)) + "." + parts[2]
	other, _ := NewTokenCodec(bytes.Repeat([]byte{1}, MinTokenSecret), 10*time.Minute, func() time.Time { return testNow })
	forged, _ := other.Issue("sid-1", workedState())
	old := testCodec(t, testNow.Add(-time.Hour))
	expired, _ := old.Issue("sid-1", workedState())
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	for _, tc := range []struct {
		name, tok string
		want      error
	}{
		{"payload changed after signing", tampered, ErrTokenSignature},
		{"signed with another key", forged, ErrTokenSignature},
		{"expired", expired, ErrTokenExpired},
		{"alg none", none, ErrTokenSignature},
		{"two parts", parts[0] + "." + parts[1], ErrTokenMalformed},
		{"empty", "", ErrTokenMalformed},
		{"over the cap", strings.Repeat("a", MaxTokenBytes+1), ErrTokenTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if bytes.Equal([]byte(tc.tok), []byte(good)) {
				t.Fatal("the case's token is the good one")
			}
			_, err := c.Verify(tc.tok)
			if !errors.Is(err, tc.want) {
				t.Errorf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

// A long history is cut from its oldest end so the token stays under the
// cap; the newest entries and the last result survive.
func TestTokenStaysUnderCap(t *testing.T) {
	c := testCodec(t, testNow)
	var st SessionState
	for i := range maxHistory {
		st.record(Add, float64(i), 0.123456789, float64(i)+0.123456789)
	}
	tok, err := c.Issue("sid", st)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Verify(tok)
	if err != nil || len(tok) > MaxTokenBytes {
		t.Fatalf("%d bytes: %v", len(tok), err)
	}
	if n := len(got.State.History); n == 0 || n >= maxHistory || got.State.History[n-1].A != maxHistory-1 || got.State.LastResult != st.LastResult {
		t.Errorf("history %d entries, last %+v", n, got.State.History[n-1])
	}
}

// Secrets are hex of at least 32 bytes.
func TestParseTokenSecret(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{strings.Repeat("ab", 32), true}, {strings.Repeat("ab", 31), false}, {"xyz", false}, {"", false}, {NewTokenSecret(), true},
	} {
		_, err := ParseTokenSecret(tc.in)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrTokenSecret)) {
			t.Errorf("ParseTokenSecret(%q) = %v", tc.in, err)
		}
	}
}

// Any change to a token — a byte replaced, inserted or removed anywhere —
// is refused: the verifier accepts the token it issued and nothing else.
func FuzzTokenMutation(f *testing.F) {
	c := testCodec(f, testNow)
	good, err := c.Issue("sid-1", workedState())
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []struct {
		pos  int
		kind uint8
		b    byte
	}{{0, 0, 1}, {len(good) - 1, 0, 1}, {len(good) - 1, 0, 2}, {len(good) / 2, 1, 'A'}, {len(good) - 1, 2, 0}, {strings.Index(good, "."), 0, 'x'}, {40, 0, 0x20}} {
		f.Add(s.pos, s.kind, s.b)
	}
	f.Fuzz(func(t *testing.T, pos int, kind uint8, b byte) {
		if pos < 0 {
			pos = -pos
		}
		pos %= len(good)
		var m string
		switch kind % 3 {
		case 0:
			m = good[:pos] + string([]byte{good[pos] ^ b}) + good[pos+1:]
		case 1:
			m = good[:pos] + string([]byte{b}) + good[pos:]
		default:
			m = good[:pos] + good[pos+1:]
		}
		if m == good {
			return
		}
		if ts, err := c.Verify(m); err == nil {
			t.Fatalf("mutation %d/%d/%#x accepted: %q → %+v", pos, kind%3, b, m, ts)
		}
	})
}

// Any string at all: Verify never panics, and accepts nothing it did not
// issue.
func FuzzTokenVerify(f *testing.F) {
	c := testCodec(f, testNow)
	good, _ := c.Issue("sid-1", workedState())
	for _, s := range []string{good, "", ".", "..", "a.b.c", good + ".", strings.ToUpper(good), "eyJhbGciOiJub25lIn0.e30."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := c.Verify(s); err == nil && s != good {
			t.Fatalf("accepted %q", s)
		}
	})
}

// Every single character of a token replaced by every other character a
// token may hold, and CR or LF inserted anywhere: all refused.
func TestTokenRefusesEverySingleCharacterChange(t *testing.T) {
	c := testCodec(t, testNow)
	good, _ := c.Issue("sid-1", workedState())
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
	step := 1
	if testing.Short() {
		step = 7
	}
	tried := 0
	for i := 0; i < len(good); i += step {
		for _, m := range []string{good[:i] + "\r" + good[i:], good[:i] + "\n" + good[i:]} {
			if _, err := c.Verify(m); err == nil {
				t.Fatalf("accepted with a line break at %d", i)
			}
		}
		for k := 0; k < len(alphabet); k++ {
			if alphabet[k] == good[i] {
				continue
			}
			m := good[:i] + alphabet[k:k+1] + good[i+1:]
			tried++
			if _, err := c.Verify(m); err == nil {
				t.Fatalf("accepted %q at %d (was %q)", alphabet[k], i, good[i])
			}
		}
	}
	t.Logf("%d single-character changes refused", tried)
}
