package sandbox

import (
	"errors"
	"os"
	"path/filepath"
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
