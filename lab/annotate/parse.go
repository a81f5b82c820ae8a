package annotate

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Errors returned by Parse.
var (
	ErrNoBlock      = errors.New("annotate: the comment has no [statelab …] block")
	ErrSyntax       = errors.New("annotate: malformed block")
	ErrUnknownField = errors.New("annotate: unknown field")
	ErrValue        = errors.New("annotate: bad value")
)

// Parse returns the block that ends comment (trailing spaces allowed) and
// the text before it. A comment without a block gives ErrNoBlock; a block
// that breaks the grammar, names a field Table does not have, or gives a
// numeric field a value that is not a number of its size gives an error
// saying where.
func Parse(comment string) (text string, b Block, err error) {
	start := strings.LastIndex(comment, Opening)
	if start < 0 {
		return comment, nil, ErrNoBlock
	}
	text = strings.TrimRight(comment[:start], " ")
	s := strings.TrimRight(comment[start:], " ")
	i := len(Opening)
	for {
		if i >= len(s) {
			return text, nil, fmt.Errorf("%w: no closing ] at byte %d", ErrSyntax, start+i)
		}
		if s[i] == ']' {
			if i != len(s)-1 {
				return text, nil, fmt.Errorf("%w: text after the closing ] at byte %d", ErrSyntax, start+i)
			}
			return text, b, nil
		}
		if s[i] != ' ' {
			return text, nil, fmt.Errorf("%w: want a space before the pair at byte %d, got %q", ErrSyntax, start+i, s[i])
		}
		i++
		var p Pair
		p, i, err = parsePair(s, i)
		if err != nil {
			return text, nil, fmt.Errorf("%w (block at byte %d)", err, start)
		}
		b = append(b, p)
	}
}

// parsePair reads key=value at s[i:] and returns the index after it.
func parsePair(s string, i int) (Pair, int, error) {
	k := i
	for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= '0' && s[i] <= '9' || s[i] == '_') {
		i++
	}
	if i == k || i >= len(s) || s[i] != '=' {
		return Pair{}, i, fmt.Errorf("%w: want key=value at byte %d", ErrSyntax, k)
	}
	key := Key(s[k:i])
	f, ok := Lookup(key)
	if !ok {
		return Pair{}, i, fmt.Errorf("%w %q", ErrUnknownField, key)
	}
	i++
	var v string
	if i < len(s) && s[i] == '"' {
		var b strings.Builder
		i++
		for {
			if i >= len(s) {
				return Pair{}, i, fmt.Errorf("%w: %s: unterminated quoted value", ErrSyntax, key)
			}
			c := s[i]
			switch {
			case c == '"':
				i++
				v = b.String()
			case c == '\\':
				if i+1 >= len(s) || !escaped(s[i+1]) {
					return Pair{}, i, fmt.Errorf("%w: %s: bad escape at byte %d", ErrSyntax, key, i)
				}
				b.WriteByte(s[i+1])
				i += 2
				continue
			case c == '[' || c == ']' || isControl(rune(c)):
				return Pair{}, i, fmt.Errorf("%w: %s: unescaped %q in a quoted value", ErrSyntax, key, c)
			default:
				b.WriteByte(c)
				i++
				continue
			}
			break
		}
	} else {
		j := i
		for i < len(s) && bareByte(s[i]) {
			i++
		}
		if i == j {
			return Pair{}, i, fmt.Errorf("%w: %s: empty value", ErrSyntax, key)
		}
		v = s[j:i]
	}
	if err := checkValue(f, v); err != nil {
		return Pair{}, i, err
	}
	return Pair{key, v}, i, nil
}

// checkValue checks a numeric field's value fits its type.
func checkValue(f Field, v string) error {
	bits := 0
	switch f.Type {
	case Uint16:
		bits = 16
	case Uint32:
		bits = 32
	case Uint64:
		bits = 64
	default:
		return nil
	}
	if _, err := strconv.ParseUint(v, 10, bits); err != nil || v[0] == '+' {
		return fmt.Errorf("%w: %s=%q is not an unsigned %d-bit number", ErrValue, f.Key, v, bits)
	}
	return nil
}
