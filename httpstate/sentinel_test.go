package httpstate

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestParseSentinelURL(t *testing.T) {
	s3 := "127.0.0.1:26379,127.0.0.2:26379,127.0.0.3:26380"
	tests := []struct {
		name string
		in   string
		want StoreURL
		err  string // a piece of the error; "" for none
	}{
		{"one Sentinel", "redis-sentinel://127.0.0.1:26379/mymaster", StoreURL{Kind: StoreRedisSentinel, Sentinels: "127.0.0.1:26379", Master: "mymaster"}, ""},
		{"three Sentinels", "redis-sentinel://" + s3 + "/statelab", StoreURL{Kind: StoreRedisSentinel, Sentinels: s3, Master: "statelab"}, ""},
		{"default port", "redis-sentinel://localhost/m", StoreURL{Kind: StoreRedisSentinel, Sentinels: "localhost:26379", Master: "m"}, ""},
		{"IPv6", "redis-sentinel://[::1]:26379/m", StoreURL{Kind: StoreRedisSentinel, Sentinels: "[::1]:26379", Master: "m"}, ""},
		{"password", "redis-sentinel://:pw@127.0.0.1:26379/m", StoreURL{Kind: StoreRedisSentinel, Sentinels: "127.0.0.1:26379", Master: "m", Password: "pw"}, ""},
		{"replica-confirmed writes", "redis-sentinel://127.0.0.1:26379/m?wait=1",
			StoreURL{Kind: StoreRedisSentinel, Sentinels: "127.0.0.1:26379", Master: "m", Confirm: 1, ConfirmTimeout: defaultConfirmTimeout}, ""},
		{"replica-confirmed writes with a timeout", "redis-sentinel://127.0.0.1:26379/m?wait=2&wait_timeout=250ms",
			StoreURL{Kind: StoreRedisSentinel, Sentinels: "127.0.0.1:26379", Master: "m", Confirm: 2, ConfirmTimeout: 250 * time.Millisecond}, ""},
		{"no master name", "redis-sentinel://127.0.0.1:26379", StoreURL{}, "no master name"},
		{"empty master name", "redis-sentinel://127.0.0.1:26379/", StoreURL{}, "no master name"},
		{"master name with a slash", "redis-sentinel://127.0.0.1:26379/a/b", StoreURL{}, "letters, digits"},
		{"no Sentinel", "redis-sentinel:///m", StoreURL{}, "no Sentinel"},
		{"empty Sentinel in the list", "redis-sentinel://127.0.0.1:26379,/m", StoreURL{}, "is not HOST:PORT"},
		{"port out of range", "redis-sentinel://127.0.0.1:70000/m", StoreURL{}, "not 1-65535"},
		{"port not a number", "redis-sentinel://127.0.0.1:x/m", StoreURL{}, "not 1-65535"},
		{"no slashes", "redis-sentinel:127.0.0.1/m", StoreURL{}, "want redis-sentinel://"},
		{"wait not a number", "redis-sentinel://127.0.0.1:26379/m?wait=x", StoreURL{}, "wait=\"x\""},
		{"wait_timeout too long", "redis-sentinel://127.0.0.1:26379/m?wait=1&wait_timeout=1h", StoreURL{}, "wait_timeout"},
		{"wait_timeout without wait", "redis-sentinel://127.0.0.1:26379/m?wait_timeout=1s", StoreURL{}, "without wait"},
		{"unknown parameter", "redis-sentinel://127.0.0.1:26379/m?db=1", StoreURL{}, "unknown parameter"},
		{"fragment", "redis-sentinel://127.0.0.1:26379/m#x", StoreURL{}, "no fragment"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseStoreURL(tt.in)
			if (err != nil) != (tt.err != "") || got != tt.want {
				t.Fatalf("ParseStoreURL(%q) = %+v, %v; want %+v, error %q", tt.in, got, err, tt.want, tt.err)
			}
			if err != nil && (!errors.Is(err, ErrStoreURL) || !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("error %q: want ErrStoreURL saying %q", err, tt.err)
			}
		})
	}
}

// A parsed redis-sentinel URL prints back to a URL that parses to the same
// thing; a bad one is an ErrStoreURL.
func FuzzParseSentinelURL(f *testing.F) {
	for _, s := range []string{"redis-sentinel://127.0.0.1:26379/m", "redis-sentinel://a,b:1/m?wait=1&wait_timeout=1.5s",
		"redis-sentinel://[::1]/m", "redis-sentinel://:p@h/m", "redis-sentinel://h:/m", "redis-sentinel://h/%zz?wait=1"} {
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

// freePort is a loopback port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startSentinelGroup starts a primary and one Sentinel (quorum 1) watching
// it as "statelab", and returns the primary and the Sentinel's address.
func startSentinelGroup(t *testing.T) (*RedisProc, string) {
	t.Helper()
	needTool(t, "redis-server")
	ctx := context.Background()
	dir := t.TempDir()
	primary, err := StartRedisProc(ctx, RedisProcSpec{Host: "127.0.0.1", Port: freePort(t), Dir: dir, Config: []string{"repl-diskless-sync-delay 0"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(primary.Close)
	host, port, _ := net.SplitHostPort(primary.Addr)
	s, err := StartRedisProc(ctx, RedisProcSpec{Host: "127.0.0.1", Port: freePort(t), Dir: dir, Sentinel: true,
		Config: []string{fmt.Sprintf("sentinel monitor statelab %s %s 1", host, port)}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return primary, s.Addr
}

// Bad input at start-up is a clear error: no Sentinel at the address, a
// master no Sentinel monitors, a URL that does not parse.
func TestSentinelStoreStartUpErrors(t *testing.T) {
	_, sentinel := startSentinelGroup(t)
	nobody := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	tests := []struct {
		name string
		url  string
		is   error
		says string
	}{
		{"unreachable Sentinel", "redis-sentinel://" + nobody + "/statelab", ErrSentinel, "no Sentinel answered"},
		{"wrong master name", "redis-sentinel://" + sentinel + "/nosuch", ErrSentinel, `no Sentinel monitors a master named "nosuch"`},
		{"the wrong name's error lists the right one", "redis-sentinel://" + sentinel + "/nosuch", ErrSentinel, "they monitor: statelab"},
		{"one of two Sentinels unreachable is fine", "redis-sentinel://" + nobody + "," + sentinel + "/statelab", nil, ""},
		{"bad URL", "redis-sentinel://" + sentinel, ErrStoreURL, "no master name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, cleanup, err := ServeMode(ctx, ServeSpec{Mode: StoreBacked, Addr: "127.0.0.1:0", Store: tt.url})
			if tt.is == nil {
				if err != nil {
					t.Fatalf("%s: %v", tt.url, err)
				}
				cleanup()
				return
			}
			if err == nil {
				cleanup()
				t.Fatalf("%s: started", tt.url)
			}
			if !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("%s: error %q; want %v saying %q", tt.url, err, tt.is, tt.says)
			}
		})
	}
}

// With wait=1 a session write no replica confirms is a 503, not a 200;
// once a replica follows the primary, the same request succeeds.
func TestReplicaConfirmedWritesNeedAReplica(t *testing.T) {
	primary, sentinel := startSentinelGroup(t)
	ctx := context.Background()
	// A wait long enough for a busy machine's replica to confirm (the
	// refusal below takes that long too).
	base := startServing(t, "redis-sentinel://"+sentinel+"/statelab?wait=1&wait_timeout=5s")
	c := NewClient(base, true)
	defer c.Close()
	rep, err := c.Post(ctx, "/session", nil)
	if err != nil || rep.Status != http.StatusServiceUnavailable || !strings.Contains(rep.Error, "not confirmed") {
		t.Fatalf("no replica: %d %q %v; want 503 not confirmed", rep.Status, rep.Error, err)
	}
	host, port, _ := net.SplitHostPort(primary.Addr)
	replica, err := StartRedisProc(ctx, RedisProcSpec{Host: "127.0.0.1", Port: freePort(t), Dir: t.TempDir(),
		Config: []string{"replicaof " + host + " " + port}})
	if err != nil {
		t.Fatal(err)
	}
	defer replica.Close()
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr})
	defer rc.Close()
	deadline := time.Now().Add(15 * time.Second)
	pc := redis.NewClient(&redis.Options{Addr: primary.Addr})
	defer pc.Close()
	// Both ends must see the link: the replica's link up, and the primary
	// listing it online (WAIT counts only the replicas it lists).
	for !strings.Contains(rc.Info(ctx, "replication").Val(), "master_link_status:up") ||
		!strings.Contains(pc.Info(ctx, "replication").Val(), "state=online") {
		if time.Now().After(deadline) {
			t.Fatal("the replica's link is not up on both ends in 15s")
		}
		time.Sleep(50 * time.Millisecond) // polling another process's state: no event to wait on
	}
	rep, err = c.Post(ctx, "/session", nil)
	if err != nil || rep.Status != http.StatusCreated {
		t.Fatalf("with a replica: %d %q %v; want 201", rep.Status, rep.Error, err)
	}
}

// startServing serves a store-backed server on store in this process.
func startServing(t *testing.T, store string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	run, cleanup, err := ServeMode(ctx, ServeSpec{Mode: StoreBacked, Addr: "127.0.0.1:0", Store: store})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cleanup)
	return run.URL()
}
