package annotate

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseReadsTheTrailingBlock(t *testing.T) {
	tests := []struct {
		name    string
		comment string
		text    string
		want    Block
		err     error
	}{
		{"bare values", "lab CLOSING snd.una=1 [statelab side=lab lab_state=CLOSING cwnd=4380]", "lab CLOSING snd.una=1",
			Block{{Side, "lab"}, {LabState, "CLOSING"}, {Cwnd, "4380"}}, nil},
		{"quoted values with escapes", `x [statelab note="held back \[as \"emitted\"\] \\ ok" side=client]`, "x",
			Block{{Note, `held back [as "emitted"] \ ok`}, {Side, "client"}}, nil},
		{"a block alone", "[statelab side=kernel]", "", Block{{Side, "kernel"}}, nil},
		{"an empty block", "text [statelab]", "text", nil, nil},
		{"trailing spaces", "t [statelab side=lab]  ", "t", Block{{Side, "lab"}}, nil},
		{"the last block counts", "says [statelab side=x] then [statelab side=lab]", "says [statelab side=x] then", Block{{Side, "lab"}}, nil},
		{"a repeated key", "[statelab pn=1 pn=2]", "", Block{{PN, "1"}, {PN, "2"}}, nil},
		{"unicode in a bare value", "[statelab path=127.0.0.1:1→127.0.0.1:2]", "", Block{{Path, "127.0.0.1:1→127.0.0.1:2"}}, nil},
		{"the largest uint32", "[statelab cwnd=4294967295]", "", Block{{Cwnd, "4294967295"}}, nil},
		{"leading zeros", "[statelab cwnd=0000000000004294967295]", "", Block{{Cwnd, "0000000000004294967295"}}, nil},
		{"the largest uint64", "[statelab pn=18446744073709551615]", "", Block{{PN, "18446744073709551615"}}, nil},
		{"no block", "lab ESTABLISHED", "lab ESTABLISHED", nil, ErrNoBlock},
		{"an unknown field", "[statelab colour=red]", "", nil, ErrUnknownField},
		{"a uint32 too big", "[statelab cwnd=4294967296]", "", nil, ErrValue},
		{"a uint16 too big", "[statelab query_id=65536]", "", nil, ErrValue},
		{"a uint64 too big", "[statelab pn=18446744073709551616]", "", nil, ErrValue},
		{"a number that is not", "[statelab cwnd=12k]", "", nil, ErrValue},
		{"a signed number", "[statelab cwnd=+1]", "", nil, ErrValue},
		{"no closing bracket", "[statelab side=lab", "", nil, ErrSyntax},
		{"text after the block", "[statelab side=lab] more", "", nil, ErrSyntax},
		{"no value", "[statelab side=]", "", nil, ErrSyntax},
		{"no equals sign", "[statelab side]", "", nil, ErrSyntax},
		{"two spaces", "[statelab  side=lab]", "", nil, ErrSyntax},
		{"no space after the opening", "[statelabside=lab]", "", nil, ErrSyntax},
		{"an unterminated quote", `[statelab note="abc]`, "", nil, ErrSyntax},
		{"a bad escape", `[statelab note="a\b"]`, "", nil, ErrSyntax},
		{"a control byte in quotes", "[statelab note=\"a\tb\"]", "", nil, ErrSyntax},
		{"an uppercase key", "[statelab Side=lab]", "", nil, ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text, b, err := Parse(tt.comment)
			if !errors.Is(err, tt.err) {
				t.Fatalf("Parse(%q) error %v, want %v", tt.comment, err, tt.err)
			}
			if err != nil {
				return
			}
			if text != tt.text || !reflect.DeepEqual(b, tt.want) {
				t.Errorf("Parse(%q) = %q, %v; want %q, %v", tt.comment, text, b, tt.text, tt.want)
			}
		})
	}
}

func TestBlockStringRoundTrips(t *testing.T) {
	tests := []struct {
		name string
		b    Block
		want string
	}{
		{"bare", Block{}.Str(Side, "lab").Uint(Cwnd, 4380), "[statelab side=lab cwnd=4380]"},
		{"spaces quoted", Block{}.Str(Reason, "wrong ID"), `[statelab reason="wrong ID"]`},
		{"brackets and quotes escaped", Block{}.Str(Note, `a [b] "c" \d`), `[statelab note="a \[b\] \"c\" \\d"]`},
		{"an equals sign quoted", Block{}.Str(Note, "x=1"), `[statelab note="x=1"]`},
		{"controls become spaces", Block{}.Str(Note, "a\nb"), `[statelab note="a b"]`},
		{"empty values left out", Block{}.Str(Side, "lab").Str(Note, ""), "[statelab side=lab]"},
		{"a uint64", Block{}.Uint(PN, 1<<63), "[statelab pn=9223372036854775808]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Append("text", tt.b)
			if got != "text "+tt.want {
				t.Fatalf("Append = %q, want %q", got, "text "+tt.want)
			}
			text, b, err := Parse(got)
			if err != nil || text != "text" {
				t.Fatalf("Parse(%q) = %q, %v", got, text, err)
			}
			for i := range b {
				if b[i].Value != Clean(tt.b[i].Value) {
					t.Errorf("value %d = %q, want %q", i, b[i].Value, Clean(tt.b[i].Value))
				}
			}
		})
	}
}

func TestAppendWithNoBlockKeepsTheText(t *testing.T) {
	if got := Append("only text", nil); got != "only text" {
		t.Errorf("Append = %q", got)
	}
	if got := Append("", Block{}.Str(Side, "lab")); got != "[statelab side=lab]" {
		t.Errorf("Append = %q", got)
	}
}

func TestTableKeysAreUniqueAndWellFormed(t *testing.T) {
	seen := map[Key]bool{}
	for _, f := range Table {
		if seen[f.Key] {
			t.Errorf("%s twice", f.Key)
		}
		seen[f.Key] = true
		if strings.Trim(string(f.Key), "abcdefghijklmnopqrstuvwxyz0123456789_") != "" || f.Key == "" {
			t.Errorf("key %q breaks the grammar", f.Key)
		}
		if f.Title == "" || f.Doc == "" || f.Group == "" {
			t.Errorf("%s: title, doc and group are required", f.Key)
		}
		if f.Hex && f.Type == String {
			t.Errorf("%s: a string cannot be hexadecimal", f.Key)
		}
	}
	for _, k := range []Key{Side, LabState, KernelState, SndUna, SndNxt, RcvNxt, Cwnd, Note} {
		if !seen[k] {
			t.Errorf("issue 15 names statelab.%s; Table lacks it", k)
		}
	}
}

// FuzzParse: Parse never panics; what it accepts formats back to a block
// it reads the same; every block Block.String writes it reads back.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"lab CLOSING [statelab side=lab lab_state=CLOSING cwnd=4380]",
		`x [statelab note="a \[b\] \"c\"" pn=1 pn=2]`,
		"[statelab]", "[statelab side=", "[statelab cwnd=99999999999]", "no block",
		"[statelab [statelab side=lab]", `[statelab note="\`,
	} {
		f.Add(s, "lab", uint64(7))
	}
	f.Fuzz(func(t *testing.T, comment, v string, n uint64) {
		if _, b, err := Parse(comment); err == nil && len(b) > 0 {
			_, b2, err := Parse(Append("t", b))
			if err != nil || !reflect.DeepEqual(b, b2) {
				t.Fatalf("Parse(%q) = %v; its reformat %q reads %v, %v", comment, b, Append("t", b), b2, err)
			}
		}
		b := Block{}.Str(Note, v).Uint(Cwnd, n%(1<<32)).Uint(PN, n).Str(Side, v)
		text, got, err := Parse(Append(comment, b))
		if err != nil {
			t.Fatalf("Parse(Append(%q, %v)): %v", comment, b, err)
		}
		if text != strings.TrimRight(comment, " ") {
			t.Errorf("text %q, want %q", text, comment)
		}
		want := Block{}.Str(Note, Clean(v)).Uint(Cwnd, n%(1<<32)).Uint(PN, n).Str(Side, Clean(v))
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Parse(Append(%q, %v)) = %v, want %v", comment, b, got, want)
		}
	})
}
