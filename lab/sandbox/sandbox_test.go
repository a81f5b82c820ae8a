package sandbox

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestUnavailableNamesReasonAndRemedy(t *testing.T) {
	tests := []struct {
		name       string
		sysctls    map[string]string
		wantReason string
		wantRemedy string
	}{
		{"user namespaces disabled", map[string]string{"sys/user/max_user_namespaces": "0"}, "max_user_namespaces = 0", "sysctl -w user.max_user_namespaces"},
		{"debian unprivileged switch off", map[string]string{"sys/user/max_user_namespaces": "100", "sys/kernel/unprivileged_userns_clone": "0"}, "unprivileged_userns_clone = 0", "sysctl -w kernel.unprivileged_userns_clone=1"},
		{"apparmor restriction", map[string]string{"sys/kernel/apparmor_restrict_unprivileged_userns": "1"}, "AppArmor", "apparmor_restrict_unprivileged_userns=0"},
		{"container policy", nil, "refused", "--privileged"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for p, v := range tt.sysctls {
				if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(root, p), []byte(v+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			old := procRoot
			procRoot = root
			defer func() { procRoot = old }()
			err := explain(syscall.EPERM)
			var u *UnavailableError
			if !errors.As(err, &u) || !errors.Is(err, ErrUnavailable) || !errors.Is(err, syscall.EPERM) {
				t.Fatalf("explain = %v, want an *UnavailableError wrapping ErrUnavailable and EPERM", err)
			}
			if !strings.Contains(u.Reason, tt.wantReason) || !strings.Contains(u.Remedy, tt.wantRemedy) {
				t.Errorf("reason %q remedy %q; want them to contain %q and %q", u.Reason, u.Remedy, tt.wantReason, tt.wantRemedy)
			}
		})
	}
}

// The marker is believed only with the parent's pipe behind it: the nonce
// it names must be the pipe's, the namespace written there must be the
// real parent's (so a pipe forged by whoever starts the process proves
// nothing), and this process must not be in it.
func TestMarkerIsBelievedOnlyWithTheParentsPipe(t *testing.T) {
	// A /proc of our own: this process in net:[2] (or, in stayed, in its
	// parent's), its parent in net:[1].
	fakeProc := func(self string) string {
		proc := t.TempDir()
		for _, l := range []struct{ dir, ns string }{{"self", self}, {strconv.Itoa(os.Getppid()), "net:[1]"}} {
			if err := os.MkdirAll(filepath.Join(proc, l.dir, "ns"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(l.ns, filepath.Join(proc, l.dir, "ns", "net")); err != nil {
				t.Fatal(err)
			}
		}
		return proc
	}
	moved, stayed := fakeProc("net:[2]"), fakeProc("net:[1]")
	pipe := func(t *testing.T, content string) int {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		w.WriteString(content)
		w.Close()
		fd, err := syscall.Dup(int(r.Fd()))
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		return fd
	}
	file := func(t *testing.T) int {
		f, err := os.CreateTemp(t.TempDir(), "notapipe")
		if err != nil {
			t.Fatal(err)
		}
		fd, _ := syscall.Dup(int(f.Fd()))
		f.Close()
		return fd
	}
	tests := []struct {
		name   string
		marker func(t *testing.T) string
		inside bool
		proc   string // moved when empty
		shared bool   // the namespace has more than a new lo
		// vouched: the pipe carried the nonce, so a process failing the
		// rest refuses rather than re-executing.
		vouched bool
	}{
		{"the parent's pipe, another namespace", func(t *testing.T) string {
			return fmt.Sprintf("%d:abc", pipe(t, "abc net:[1]\n"))
		}, true, "", false, true},
		{"set by hand to 1", func(*testing.T) string { return "1" }, false, "", false, false},
		{"empty", func(*testing.T) string { return "" }, false, "", false, false},
		{"a descriptor that is not open", func(*testing.T) string { return "999:abc" }, false, "", false, false},
		{"a descriptor that is a file", func(t *testing.T) string { return fmt.Sprintf("%d:abc", file(t)) }, false, "", false, false},
		{"a pipe with another nonce", func(t *testing.T) string {
			return fmt.Sprintf("%d:abc", pipe(t, "xyz net:[1]\n"))
		}, false, "", false, false},
		{"the parent's own namespace (never left it)", func(t *testing.T) string {
			return fmt.Sprintf("%d:abc", pipe(t, "abc net:[1]\n"))
		}, false, stayed, false, true},
		{"a pipe naming this process's own namespace", func(t *testing.T) string {
			return fmt.Sprintf("%d:abc", pipe(t, "abc net:[2]\n"))
		}, false, "", false, true},
		{"a forged pipe naming a namespace that is not the parent's", func(t *testing.T) string {
			return fmt.Sprintf("%d:abc", pipe(t, "abc net:[3]\n"))
		}, false, "", false, true},
		{"stdin", func(*testing.T) string { return "0:abc" }, false, "", false, false},
		{"the parent's pipe, but a namespace in use (more than a new lo)", func(t *testing.T) string {
			return fmt.Sprintf("%d:abc", pipe(t, "abc net:[1]\n"))
		}, false, "", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			proc := tt.proc
			if proc == "" {
				proc = moved
			}
			ifaces := func() ([]net.Interface, error) {
				list := []net.Interface{{Index: 1, Name: "lo", Flags: net.FlagLoopback}}
				if tt.shared {
					list = append(list, net.Interface{Index: 2, Name: "eth0", Flags: net.FlagUp})
				}
				return list, nil
			}
			nonce, vouched, err := checkProof(tt.marker(t), proc, ifaces)
			if (err == nil) != tt.inside {
				t.Errorf("checkProof = %q, %v; want inside=%v", nonce, err, tt.inside)
			}
			// A pipe that carries the nonce vouches: such a process
			// refuses rather than re-executing when the rest fails.
			if vouched != tt.vouched {
				t.Errorf("vouched = %v, want %v", vouched, tt.vouched)
			}
			if err != nil && !errors.Is(err, ErrNotInside) {
				t.Errorf("error %v does not wrap ErrNotInside", err)
			}
		})
	}
}

// The inner process runs the lab only in a network namespace just made:
// lo down, and at most the kernel's fallback tunnels, down. A shared one
// (a container's, one entered with nsenter) is refused, whatever the pipe
// says.
func TestOnlyANewNamespaceIsTakenForTheLabs(t *testing.T) {
	lo := net.Interface{Index: 1, Name: "lo", Flags: net.FlagLoopback}
	up := lo
	up.Flags |= net.FlagUp
	eth := net.Interface{Index: 2, Name: "eth0", Flags: net.FlagUp}
	sit := net.Interface{Index: 2, Name: "sit0", Flags: net.FlagPointToPoint}
	tunl := net.Interface{Index: 3, Name: "tunl0"}
	tunlUp := tunl
	tunlUp.Flags |= net.FlagUp
	ethDown := eth
	ethDown.Flags = 0
	tests := []struct {
		name   string
		ifaces []net.Interface
		ok     bool
	}{
		{"lo alone, down: just made", []net.Interface{lo}, true},
		{"lo up: someone used it", []net.Interface{up}, false},
		{"another interface: shared", []net.Interface{lo, eth}, false},
		{"no interface at all", nil, false},
		{"lo and the kernel's fallback tunnels, all down: just made", []net.Interface{lo, tunl, sit}, true},
		{"a fallback tunnel up: someone used it", []net.Interface{lo, tunlUp}, false},
		{"another interface, down: shared", []net.Interface{lo, ethDown}, false},
		{"fallback tunnels without lo", []net.Interface{sit}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := fresh(tt.ifaces); (err == nil) != tt.ok {
				t.Errorf("fresh = %v, want ok %v", err, tt.ok)
			}
		})
	}
}
