package main

import (
	"strings"
	"testing"
)

func TestQUICGetUsage(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string // substring expected on stdout
		stderr string // substring expected on stderr
	}{
		{"--help shows examples", []string{"quic", "get", "--help"}, 0, "Examples:", ""},
		{"--help shows an https example", []string{"quic", "get", "-h"}, 0, "statelab quic get https://127.0.0.1:4433/bytes/", ""},
		{"--help documents --insecure", []string{"quic", "get", "--help"}, 0, "-insecure", ""},
		{"missing URL", []string{"quic", "get"}, 2, "", "give one URL"},
		{"two URLs", []string{"quic", "get", "https://127.0.0.1:1/", "https://127.0.0.1:2/"}, 2, "", "give one URL"},
		{"bad scheme", []string{"quic", "get", "http://127.0.0.1:4433/"}, 2, "", `unsupported URL "http://127.0.0.1:4433/"`},
		{"no port", []string{"quic", "get", "https://127.0.0.1/"}, 2, "", "has no port"},
		{"raw path must be /bytes/N", []string{"quic", "get", "quic://127.0.0.1:4433/index"}, 2, "", "path must be /bytes/N"},
		{"bad duration", []string{"quic", "get", "--migrate-after", "soon", "https://127.0.0.1:4433/"}, 2, "", "invalid value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := run(tt.args...)
			if code != tt.code || !strings.Contains(out, tt.stdout) || !strings.Contains(errOut, tt.stderr) {
				t.Errorf("statelab %q = %d\nstdout: %s\nstderr: %s\nwant %d, stdout containing %q, stderr containing %q",
					tt.args, code, out, errOut, tt.code, tt.stdout, tt.stderr)
			}
		})
	}
}
