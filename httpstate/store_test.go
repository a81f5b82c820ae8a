package httpstate

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
)

func TestParseStoreURL(t *testing.T) {
	tests := []struct {
		name, in string
		want     StoreURL
		err      bool
	}{
		{"memory", "memory", StoreURL{Kind: StoreMemory}, false},
		{"memory with slashes", "memory://", StoreURL{Kind: StoreMemory}, false},
		{"sqlite absolute path", "sqlite:///var/tmp/s.db", StoreURL{Kind: StoreSQLite, Path: "/var/tmp/s.db"}, false},
		{"sqlite relative path", "sqlite:s.db", StoreURL{Kind: StoreSQLite, Path: "s.db"}, false},
		{"sqlite with a host is refused", "sqlite://host/s.db", StoreURL{}, true},
		{"sqlite without a path is refused", "sqlite://", StoreURL{}, true},
		{"sqlite directory is refused", "sqlite:///tmp/", StoreURL{}, true},
		{"sqlite with a query is refused", "sqlite:///s.db?mode=ro", StoreURL{}, true},
		{"redis host and port", "redis://127.0.0.1:6379", StoreURL{Kind: StoreRedis, Addr: "127.0.0.1:6379"}, false},
		{"redis default port", "redis://127.0.0.1", StoreURL{Kind: StoreRedis, Addr: "127.0.0.1:6379"}, false},
		{"redis database", "redis://127.0.0.1:6380/3", StoreURL{Kind: StoreRedis, Addr: "127.0.0.1:6380", DB: 3}, false},
		{"redis IPv6", "redis://[::1]:6379", StoreURL{Kind: StoreRedis, Addr: "[::1]:6379"}, false},
		{"redis password", "redis://:pw@127.0.0.1:6379", StoreURL{Kind: StoreRedis, Addr: "127.0.0.1:6379", Password: "pw"}, false},
		{"redis database out of range", "redis://127.0.0.1/16", StoreURL{}, true},
		{"redis database not a number", "redis://127.0.0.1/x", StoreURL{}, true},
		{"redis database with a leading zero", "redis://127.0.0.1/01", StoreURL{}, true},
		{"redis port out of range", "redis://127.0.0.1:70000", StoreURL{}, true},
		{"redis empty port", "redis://127.0.0.1:", StoreURL{}, true},
		{"redis without host", "redis://:6379", StoreURL{}, true},
		{"unknown scheme", "postgres://localhost/db", StoreURL{}, true},
		{"no scheme", "/tmp/s.db", StoreURL{}, true},
		{"empty", "", StoreURL{}, true},
		{"control character", "sqlite:a\nb", StoreURL{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStoreURL(tt.in)
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("ParseStoreURL(%q) = %+v, %v; want %+v, error %t", tt.in, got, err, tt.want, tt.err)
			}
			if err != nil && !errors.Is(err, ErrStoreURL) {
				t.Errorf("error %v does not wrap ErrStoreURL", err)
			}
		})
	}
}

// A parsed URL prints back to a URL that parses to the same thing.
func FuzzParseStoreURL(f *testing.F) {
	for _, s := range []string{"memory", "sqlite:///tmp/a.db", "sqlite:a.db", "redis://127.0.0.1:6379/2", "redis://:p@[::1]", "redis://h:", "sqlite://%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		u, err := ParseStoreURL(s)
		if err != nil {
			if !errors.Is(err, ErrStoreURL) {
				t.Fatalf("%q: error %v does not wrap ErrStoreURL", s, err)
			}
			return
		}
		if u.Password != "" {
			return // String leaves the password out
		}
		again, err := ParseStoreURL(u.String())
		if err != nil || again != u {
			t.Fatalf("%q → %+v → %q → %+v, %v", s, u, u.String(), again, err)
		}
	})
}

// The same session, written through one SQLite store and read through
// another opened on the same file: what the store-backed backends share.
func TestSQLiteStoreIsSharedThroughTheFile(t *testing.T) {
	u := StoreURL{Kind: StoreSQLite, Path: filepath.Join(t.TempDir(), "s.db")}
	ctx := context.Background()
	a, closeA, err := OpenStore(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer closeA()
	b, closeB, err := OpenStore(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	defer closeB()
	srvA, _ := New(Config{Mode: StoreBacked, Store: a})
	srvB, _ := New(Config{Mode: StoreBacked, Store: b})
	runA, _ := Listen("127.0.0.1:0", srvA)
	runB, _ := Listen("127.0.0.1:0", srvB)
	defer runA.Close()
	defer runB.Close()
	c := NewClient(runA.URL(), true)
	defer c.Close()
	token := startSession(t, c)
	st, ok, err := srvB.Session(ctx, token)
	if err != nil || !ok || st.LastResult != 15 || len(st.History) != 1 {
		t.Fatalf("backend B sees %+v ok=%v err=%v; want last_result 15 and one history entry", st, ok, err)
	}
}

func TestStoreModeNeedsAStore(t *testing.T) {
	if _, err := New(Config{Mode: StoreBacked}); err == nil {
		t.Fatal("store mode without a store was accepted")
	}
}
