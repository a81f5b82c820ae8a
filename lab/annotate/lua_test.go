package annotate

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/statelab/statelab/lab/capture"
	"github.com/statelab/statelab/lab/labtest"
)

// root is the module's root, from this package's directory.
const root = "../.."

func TestGeneratedFilesAreUpToDate(t *testing.T) {
	for path, want := range Generated() {
		got, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			t.Fatalf("%s: %v (run go generate ./lab/annotate)", path, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what lab/annotate/table.go generates: run go generate ./lab/annotate", path)
		}
	}
}

func TestLuaDeclaresEveryField(t *testing.T) {
	lua := string(Lua())
	for _, f := range Table {
		decl := "ProtoField." + f.Type.String() + `("statelab.` + string(f.Key) + `"`
		if !strings.Contains(lua, decl) {
			t.Errorf("the plugin lacks %s", decl)
		}
	}
}

// mirrorCases are comments the plugin must read as Parse does.
var mirrorCases = []string{
	"lab CLOSING [statelab side=lab lab_state=CLOSING kernel_state=FIN-WAIT-1 snd_una=1 snd_nxt=2 rcv_nxt=2 cwnd=4380]",
	`forged #2 [statelab side=forger kind=forged query_id=19719 verdict=rejected reason="wrong question"]`,
	`x [statelab note="held back \[as \"emitted\"\] \\ ok" path=127.0.0.1:1→127.0.0.1:2 pn=1 pn=18446744073709551615]`,
	"[statelab cwnd=0000000000004294967295 mode=\"stateless, round-robin\"]",
	"says [statelab side=x] then [statelab side=lab]  ",
	"[statelab]",
	"no block at all",
	"[statelab cwnd=4294967296]",
	"[statelab pn=18446744073709551616]",
	"[statelab query_id=65535]",
	"[statelab query_id=65536]",
	"[statelab colour=red]",
	"[statelab side=lab",
	"[statelab side=lab] more",
	"[statelab side=]",
	"[statelab  side=lab]",
	`[statelab note="a\b"]`,
	`[statelab note="abc]`,
	"[statelab Side=lab]",
	"[statelab note=\"a\x01b\"]",
}

// TestLuaParsesAsParseDoes writes every mirror case as a packet comment,
// runs tshark with the plugin and checks each packet's statelab fields
// are what Parse reads, and statelab.error is set exactly where Parse
// fails on a block.
func TestLuaParsesAsParseDoes(t *testing.T) {
	labtest.NeedTool(t, "tshark")
	path := filepath.Join(t.TempDir(), "mirror.pcapng")
	var pkts []*capture.Packet
	for _, c := range mirrorCases {
		p := &capture.Packet{Time: time.Unix(1, 0), Data: frame()}
		p.Comment(c)
		pkts = append(pkts, p)
	}
	if err := capture.WriteFile(path, capture.File{Experiment: "annotate/mirror", Interface: "lo", Packets: pkts}); err != nil {
		t.Fatal(err)
	}
	rows := tsharkFields(t, path, "")
	if len(rows) != len(mirrorCases) {
		t.Fatalf("tshark printed %d rows for %d packets", len(rows), len(mirrorCases))
	}
	for i, c := range mirrorCases {
		_, b, err := Parse(c)
		got := rows[i]
		want := map[Key][]string{}
		for _, p := range b {
			want[p.Key] = append(want[p.Key], p.Value)
		}
		for _, f := range Table {
			if !equalValues(f, got[f.Key], want[f.Key]) {
				t.Errorf("%q: statelab.%s = %q, Parse reads %q", c, f.Key, got[f.Key], want[f.Key])
			}
		}
		malformed := err != nil && !errors.Is(err, ErrNoBlock)
		if (len(got[errorKey]) > 0) != malformed {
			t.Errorf("%q: statelab.error = %q, Parse: %v", c, got[errorKey], err)
		}
	}
}

// errorKey is the plugin's own field for a malformed block.
const errorKey Key = "error"

// equalValues compares tshark's printing of a field with Parse's values.
func equalValues(f Field, got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if f.Type == String {
			if got[i] != want[i] {
				return false
			}
			continue
		}
		g, err := strconv.ParseUint(got[i], 0, 64) // 0x… for a hexadecimal field
		w := strings.TrimLeft(want[i], "0")
		if w == "" {
			w = "0"
		}
		if err != nil || strconv.FormatUint(g, 10) != w {
			return false
		}
	}
	return true
}

// frame is a minimal Ethernet frame of a local experimental EtherType,
// which Wireshark shows as data.
func frame() []byte {
	b := make([]byte, 60)
	b[12], b[13] = 0x88, 0xb5
	return b
}

// tsharkFields runs tshark with the plugin on a capture (with a display
// filter unless it is "") and returns each shown frame's statelab fields,
// every occurrence of each, with statelab.error under the key "error".
func tsharkFields(t testing.TB, path, filter string) []map[Key][]string {
	t.Helper()
	const agg = "\x1e"
	keys := []Key{errorKey}
	for _, f := range Table {
		keys = append(keys, f.Key)
	}
	args := []string{"-X", "lua_script:" + filepath.Join(root, LuaPath), "-T", "fields",
		"-E", "occurrence=a", "-E", "aggregator=" + agg, "-E", "separator=/t", "-e", "frame.number"}
	if filter != "" {
		args = append(args, "-Y", filter)
	}
	for _, k := range keys {
		args = append(args, "-e", "statelab."+string(k))
	}
	out := labtest.Tshark(t, path, args...)
	var rows []map[Key][]string
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		cols := strings.Split(line, "\t")
		if len(cols) != len(keys)+1 {
			t.Fatalf("tshark line with %d columns, want %d: %q", len(cols), len(keys)+1, line)
		}
		row := map[Key][]string{}
		for i, k := range keys {
			if v := cols[i+1]; v != "" {
				row[k] = strings.Split(v, agg)
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// The profile, installed as Wireshark looks for it, shows the lab's state
// in its columns, and every filter button and I/O graph filter compiles
// and matches the packet it is for.
func TestProfileShowsTheLabsState(t *testing.T) {
	labtest.NeedTool(t, "tshark")
	dir := t.TempDir()
	profile := filepath.Join(dir, "profiles", "statelab")
	if err := os.MkdirAll(profile, 0o755); err != nil {
		t.Fatal(err)
	}
	for path, b := range Generated() {
		if filepath.Dir(path) == ProfileDir {
			if err := os.WriteFile(filepath.Join(profile, filepath.Base(path)), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Setenv("WIRESHARK_CONFIG_DIR", dir)
	cap := filepath.Join(dir, "profile.pcapng")
	var pkts []*capture.Packet
	for _, c := range []string{
		"lab CLOSING " + Block{}.Str(Side, "lab").Str(LabState, "CLOSING").Str(KernelState, "FIN-WAIT-1").Uint(Cwnd, 4380).Uint(SndNxt, 2).String(),
		"forged " + Block{}.Str(Side, "forger").Str(Verdict, "rejected").Str(Reason, "wrong ID").String(),
		"PATH_CHALLENGE " + Block{}.Str(Side, "server").Str(Event, "PATH_CHALLENGE").String(),
		"reply " + Block{}.Str(Side, "server").Str(Session, "last_result=15").String(),
		"[statelab side=]",
	} {
		p := &capture.Packet{Time: time.Unix(1, 0), Data: frame()}
		p.Comment(c)
		pkts = append(pkts, p)
	}
	if err := capture.WriteFile(cap, capture.File{Experiment: "annotate/profile", Interface: "lo", Packets: pkts}); err != nil {
		t.Fatal(err)
	}
	out := labtest.Tshark(t, cap, "-C", "statelab", "-X", "lua_script:"+filepath.Join(root, LuaPath))
	first, _, _ := strings.Cut(out, "\n")
	if !strings.Contains(first, " lab CLOSING FIN-WAIT-1 ") {
		t.Errorf("the profile's columns do not show side, lab state and kernel state: %q", first)
	}
	filters := []string{}
	for _, b := range Buttons {
		filters = append(filters, b.Filter)
	}
	for _, g := range Graphs {
		if g.Filter != "" {
			filters = append(filters, g.Filter)
		}
	}
	for _, f := range filters {
		if n := len(tsharkFields(t, cap, f)); n == 0 {
			t.Errorf("filter %q matches nothing", f)
		}
	}
}
