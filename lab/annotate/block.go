package annotate

import (
	"strconv"
	"strings"
)

// Opening starts every block.
const Opening = "[statelab"

// Pair is one key=value of a block.
type Pair struct {
	Key   Key
	Value string
}

// Block is the machine-readable part of a packet comment, its pairs in
// the order they were added. Its methods append and return the block, so
// a comment's block is written in one expression:
//
//	annotate.Append(text, annotate.Block{}.Str(annotate.Side, "lab").Uint(annotate.Cwnd, 4380))
type Block []Pair

// Str adds key=v; an empty v adds nothing (a field absent, not empty).
func (b Block) Str(k Key, v string) Block {
	if v == "" {
		return b
	}
	return append(b, Pair{k, v})
}

// Uint adds key=v for a numeric field.
func (b Block) Uint(k Key, v uint64) Block {
	return append(b, Pair{k, strconv.FormatUint(v, 10)})
}

// Get returns the first value of key k.
func (b Block) Get(k Key) (string, bool) {
	for _, p := range b {
		if p.Key == k {
			return p.Value, true
		}
	}
	return "", false
}

// String formats the block: "[statelab side=lab lab_state=CLOSING]".
// Control characters in a value become spaces; a value that is not a bare
// token is quoted, with \ before " \ [ and ].
func (b Block) String() string {
	var s strings.Builder
	s.WriteString(Opening)
	for _, p := range b {
		s.WriteByte(' ')
		s.WriteString(string(p.Key))
		s.WriteByte('=')
		writeValue(&s, p.Value)
	}
	s.WriteByte(']')
	return s.String()
}

// Append ends a comment's text with block b (the text alone when b is
// empty).
func Append(text string, b Block) string {
	if len(b) == 0 {
		return text
	}
	if text == "" {
		return b.String()
	}
	return text + " " + b.String()
}

// Clean is v as a block carries it: control bytes become spaces; every
// other byte, valid UTF-8 or not, stays.
func Clean(v string) string {
	b := []byte(v)
	for i, c := range b {
		if isControl(rune(c)) {
			b[i] = ' '
		}
	}
	return string(b)
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// bareByte reports whether c may stand in a bare value.
func bareByte(c byte) bool {
	return c > ' ' && c != 0x7f && c != '"' && c != '\\' && c != '[' && c != ']' && c != '='
}

// escaped reports whether c takes a backslash in a quoted value.
func escaped(c byte) bool { return c == '"' || c == '\\' || c == '[' || c == ']' }

func writeValue(s *strings.Builder, v string) {
	v = Clean(v)
	bare := v != ""
	for i := 0; i < len(v) && bare; i++ {
		bare = bareByte(v[i])
	}
	if bare {
		s.WriteString(v)
		return
	}
	s.WriteByte('"')
	for i := 0; i < len(v); i++ {
		if escaped(v[i]) {
			s.WriteByte('\\')
		}
		s.WriteByte(v[i])
	}
	s.WriteByte('"')
}
