package rawtcp

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkNetNS lets the link alter only the namespace its caller named, and
// PID 1's only with AllowInitNetNS, read from a fake /proc.
func TestCheckNetNS(t *testing.T) {
	tests := []struct {
		name      string
		self      string // the target of self/ns/net
		init      string // of 1/ns/net; "" when unreadable
		want      string
		allowInit bool
		errText   string // "" for no error
	}{
		{"named: allowed", "net:[7]", "net:[1]", "net:[7]", false, ""},
		{"nothing named", "net:[7]", "net:[1]", "", false, "LinkConfig.NetNS is empty"},
		{"another named", "net:[7]", "net:[1]", "net:[8]", false, "NetNS is net:[8] but this process is in net:[7]"},
		{"PID 1's namespace", "net:[1]", "net:[1]", "net:[1]", false, "PID 1's network namespace"},
		{"PID 1's namespace, allowed", "net:[1]", "net:[1]", "net:[1]", true, ""},
		{"PID 1's unreadable: the name decides", "net:[1]", "", "net:[1]", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			link := func(pid, target string) {
				dir := filepath.Join(root, pid, "ns")
				if err := os.MkdirAll(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(target, filepath.Join(dir, "net")); err != nil {
					t.Fatal(err)
				}
			}
			link("self", tt.self)
			if tt.init != "" {
				link("1", tt.init)
			}
			old := procRoot
			procRoot = root
			defer func() { procRoot = old }()
			err := checkNetNS(tt.want, tt.allowInit)
			switch {
			case tt.errText == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.errText != "" && (!errors.Is(err, ErrNamespace) || !strings.Contains(err.Error(), tt.errText)):
				t.Errorf("error %v, want ErrNamespace saying %q", err, tt.errText)
			}
		})
	}
}
