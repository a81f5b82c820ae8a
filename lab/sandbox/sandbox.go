// Package sandbox puts the lab in a private network namespace with its own
// loopback, entering a user namespace first when the caller is not root, so
// that no experiment touches the host's network and nothing outlives the
// process.
//
// A multi-threaded process cannot unshare(CLONE_NEWUSER), and every Go
// program is multi-threaded, so the sandbox re-executes the current binary
// with clone flags and UID/GID maps set in SysProcAttr. The child finds the
// marker variable, brings its loopback up and carries on; the parent only
// waits, forwards signals and returns the child's exit status. The namespace
// lives exactly as long as the processes in it: when the child exits or is
// killed (it gets SIGTERM if the parent dies) the kernel tears it down.
package sandbox

import (
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Marker is the environment variable that tells a re-executed process it is
// already inside the lab's namespace. It names a pipe the parent opened for
// the child and a nonce the pipe must repeat (see Inside), so the variable
// set by hand (STATELAB_SANDBOX=1) or inherited by a grandchild proves
// nothing.
const Marker = "STATELAB_SANDBOX"

// TempEnv names the run's temporary directory to the process inside, which
// removes it with RemoveTemp as it exits.
const TempEnv = "STATELAB_RUN_TMP"

// RemoveTemp removes the run's temporary directory from inside the
// namespace when the parent that made it is gone (killed first: it would
// have removed the directory itself). A program calls it as it exits; it
// is safe anywhere else, and removes nothing but a directory its parent
// made for it.
func RemoveTemp() {
	dir := os.Getenv(TempEnv)
	if dir == "" || !Inside() || os.Getppid() == startPPID || !strings.HasPrefix(filepath.Base(dir), TempPrefix) {
		return
	}
	_ = os.RemoveAll(dir)
}

// startPPID is this process's parent as it started.
var startPPID = os.Getppid()

// ErrUnavailable is wrapped by every error that means namespaces cannot be
// created here. Callers that branch use errors.As with *UnavailableError.
var ErrUnavailable = errors.New("sandbox: network namespaces unavailable")

// UnavailableError says why the lab's namespace could not be created and
// what the user can do about it.
type UnavailableError struct {
	Reason string
	Remedy string
	Err    error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("sandbox: cannot create the lab's network namespace: %s (%v). %s", e.Reason, e.Err, e.Remedy)
}

func (e *UnavailableError) Unwrap() []error { return []error{ErrUnavailable, e.Err} }

// Inside reports whether this process is the re-executed child running in
// the lab's namespace. The parent's word comes through a pipe it opened
// for this child alone (Marker names the descriptor and a nonce that must
// match what the pipe says), the network namespace written there must be
// the one the kernel shows for this process's parent (rootless, where the
// parent's cannot be read: this process's network namespace must belong
// to its own user namespace), this process must be in another, and that
// one must be new (lo still down, nothing else but the kernel's fallback
// tunnels). A Marker set by hand (STATELAB_SANDBOX=1) or inherited by a
// grandchild proves nothing (Enter makes a namespace as if it were unset);
// a pipe that fails the rest makes Enter refuse.
func Inside() bool {
	proofOnce.Do(readProof)
	return proof.err == nil && os.Getenv(Marker) == verifiedPrefix+proof.nonce
}

// InsideErr is Inside with the reason when the answer is no.
func InsideErr() error {
	if Inside() {
		return nil
	}
	if proof.err != nil {
		return proof.err
	}
	return fmt.Errorf("%w: %s is %q", ErrNotInside, Marker, os.Getenv(Marker))
}

// ErrNotInside is wrapped by the error that says why a process is not in
// the namespace its parent made for it.
var ErrNotInside = errors.New("sandbox: not inside the lab's namespace")

const verifiedPrefix = "verified:"

var (
	proofOnce sync.Once
	proof     struct {
		nonce   string
		vouched bool // a pipe with the Marker's nonce was handed over
		err     error
	}
)

// readProof reads the parent's word once, closes the pipe, and replaces
// Marker with a value no descendant can take for a proof of its own.
func readProof() {
	marker := os.Getenv(Marker)
	nonce, vouched, err := checkProof(marker, procRoot, net.Interfaces)
	proof.nonce, proof.vouched, proof.err = nonce, vouched, err
	if err == nil {
		_ = os.Setenv(Marker, verifiedPrefix+nonce)
	}
}

// checkProof reads and checks the pipe that marker ("FD:NONCE") names,
// reading the kernel's view under proc and the namespace's interfaces
// with ifaces. vouched is true once the pipe has repeated the nonce: from
// there on a failed check makes Enter refuse rather than re-execute.
func checkProof(marker, proc string, ifaces func() ([]net.Interface, error)) (nonce string, vouched bool, err error) {
	fdText, nonce, ok := strings.Cut(marker, ":")
	fd, aerr := strconv.Atoi(fdText)
	if !ok || aerr != nil || fd < 3 || nonce == "" {
		return "", false, fmt.Errorf("%w: %s=%q was not set by a parent that made a namespace", ErrNotInside, Marker, marker)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
		return "", false, fmt.Errorf("%w: descriptor %d is not the parent's pipe (%v)", ErrNotInside, fd, err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for try := 0; try < 10; try++ { // EINTR from the runtime's signals
		if _, err = unix.Poll(fds, 1000); err != unix.EINTR {
			break
		}
	}
	buf := make([]byte, 256)
	n, err := unix.Read(fd, buf) // the parent wrote before the child started
	if err != nil || n <= 0 {
		return "", false, fmt.Errorf("%w: reading the parent's pipe: %v", ErrNotInside, err)
	}
	gotNonce, parentNS, _ := strings.Cut(strings.TrimSpace(string(buf[:n])), " ")
	if gotNonce != nonce {
		return "", false, fmt.Errorf("%w: the parent's pipe does not match %s", ErrNotInside, Marker)
	}
	own, err := os.Readlink(proc + "/self/ns/net")
	if err != nil || own == parentNS {
		return "", true, fmt.Errorf("%w: this process is in its parent's network namespace %q (%v)", ErrNotInside, parentNS, err)
	}
	// The pipe's word is checked against the kernel's: the namespace it
	// names must be the real parent's (a pipe forged by whoever started
	// this process names any it likes), and this process must have left it.
	ppid := os.Getppid()
	parentNow, err := os.Readlink(fmt.Sprintf("%s/%d/ns/net", proc, ppid))
	switch {
	case errors.Is(err, os.ErrPermission):
		// A process in a user namespace of its own may not look at its
		// parent's (rootless, the parent made both at once): then its
		// network namespace must belong to its own user namespace, which
		// the parent's, made before it, cannot.
		if err := netOwnedByOwnUser(proc); err != nil {
			return "", true, fmt.Errorf("%w: %v", ErrNotInside, err)
		}
	case err != nil || parentNow != parentNS:
		return "", true, fmt.Errorf("%w: the pipe names network namespace %q, but the parent (pid %d) is in %q (%v)", ErrNotInside, parentNS, ppid, parentNow, err)
	case own == parentNow:
		return "", true, fmt.Errorf("%w: this process is in its parent's network namespace %q", ErrNotInside, parentNow)
	}
	// Last, the namespace must be as new as one the parent made for this
	// process alone: a loopback nobody has brought up yet and at most the
	// kernel's fallback tunnels, down. A namespace shared with others (a
	// container's, one entered with nsenter) has more, or its lo up.
	list, err := ifaces()
	if err != nil {
		return "", true, fmt.Errorf("%w: listing this namespace's interfaces: %v", ErrNotInside, err)
	}
	if err := fresh(list); err != nil {
		return "", true, fmt.Errorf("%w: %v", ErrNotInside, err)
	}
	return nonce, true, nil
}

// fresh reports why a network namespace with these interfaces is not one
// just made (nil when it is: lo, down, and at most the fallback tunnel
// devices a kernel with those modules loaded puts in every new namespace,
// down too).
func fresh(ifaces []net.Interface) error {
	var names []string
	for _, i := range ifaces {
		names = append(names, i.Name)
	}
	lo := false
	for _, i := range ifaces {
		switch {
		case i.Name != "lo" && !fallbackTunnel[i.Name]:
			return fmt.Errorf("this network namespace has interfaces %v; one just made has lo (and the kernel's fallback tunnels) alone", names)
		case i.Flags&net.FlagUp != 0:
			return fmt.Errorf("this network namespace's %s is up already; in one just made it is down", i.Name)
		}
		lo = lo || i.Name == "lo"
	}
	if !lo {
		return fmt.Errorf("this network namespace has interfaces %v and no lo; one just made has lo", names)
	}
	return nil
}

// fallbackTunnel names the devices the kernel adds to every new network
// namespace while the ipip, sit, ip6_tunnel, ip_gre, ip6_gre or ip_vti
// modules are loaded (net.core.fb_tunnels_only_for_init_net = 0, the
// default).
var fallbackTunnel = map[string]bool{
	"tunl0": true, "sit0": true, "ip6tnl0": true, "gre0": true, "gretap0": true,
	"erspan0": true, "ip6gre0": true, "ip_vti0": true, "ip6_vti0": true,
}

// netOwnedByOwnUser checks that this process's network namespace is owned
// by its own user namespace (NS_GET_USERNS), as one made together with it
// is.
func netOwnedByOwnUser(proc string) error {
	f, err := os.Open(proc + "/self/ns/net")
	if err != nil {
		return err
	}
	defer f.Close()
	ufd, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_USERNS)
	if err != nil {
		return fmt.Errorf("the owner of this process's network namespace: %w", err)
	}
	defer unix.Close(ufd)
	var owner, own unix.Stat_t
	if err := unix.Fstat(ufd, &owner); err != nil {
		return err
	}
	if err := unix.Stat(proc+"/self/ns/user", &own); err != nil {
		return err
	}
	if owner.Dev != own.Dev || owner.Ino != own.Ino {
		return fmt.Errorf("this process's network namespace belongs to another user namespace than its own: not one its parent made for it")
	}
	return nil
}

// vouch opens the pipe that tells a child started in a new namespace who
// its parent is: the nonce and this process's network namespace, written
// before the child starts. It returns the read end for the child and the
// Marker value naming it as descriptor fd.
func vouch(fd int) (*os.File, string, error) {
	ns, err := os.Readlink(procRoot + "/self/ns/net")
	if err != nil {
		return nil, "", fmt.Errorf("sandbox: reading this process's network namespace: %w", err)
	}
	var b [12]byte
	if _, err := crand.Read(b[:]); err != nil {
		return nil, "", err
	}
	nonce := hex.EncodeToString(b[:])
	r, w, err := os.Pipe()
	if err != nil {
		return nil, "", err
	}
	defer w.Close()
	if _, err := fmt.Fprintf(w, "%s %s\n", nonce, ns); err != nil {
		r.Close()
		return nil, "", err
	}
	return r, fmt.Sprintf("%d:%s", fd, nonce), nil
}

// Command returns a command that runs name with args in a new network
// namespace, and a new user namespace mapping the caller to root when the
// caller is not root. The child's environment carries Marker and its
// descriptor 3 the pipe Marker names (see Inside); a caller that adds
// ExtraFiles appends to them.
func Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = os.Environ()
	// The parent's word for the child: a pipe as the child's descriptor 3.
	// Without it the child could not prove where it is and would make a
	// namespace of its own again: Start fails instead.
	r, marker, err := vouch(3)
	if err != nil {
		cmd.Err = fmt.Errorf("sandbox: the pipe that tells the lab process where it is: %w", err)
		return cmd
	}
	cmd.ExtraFiles = []*os.File{r}
	cmd.Env = append(cmd.Env, Marker+"="+marker)
	attr := &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNET,
		// The child dies with its parent, gracefully: SIGTERM lets it
		// finish writing its captures.
		Pdeathsig: syscall.SIGTERM,
		// Its own process group: the parent forwards Ctrl-C exactly once.
		Setpgid: true,
	}
	if os.Geteuid() != 0 {
		attr.Cloneflags |= syscall.CLONE_NEWUSER
		attr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Geteuid(), Size: 1}}
		attr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getegid(), Size: 1}}
		attr.GidMappingsEnableSetgroups = false
	}
	cmd.SysProcAttr = attr
	return cmd
}

// StopSignals stop a statelab program as Ctrl-C does: SIGINT, SIGTERM and
// SIGHUP (the terminal closed). SIGHUP is left out when the program
// started with it ignored, as under nohup: asking for a signal undoes an
// inherited ignore, and a program started to outlive its terminal must.
var StopSignals = stopSignals(signal.Ignored(unix.SIGHUP))

func stopSignals(hupIgnored bool) []os.Signal {
	if hupIgnored {
		return []os.Signal{unix.SIGINT, unix.SIGTERM}
	}
	return []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP}
}

// TempPrefix begins the name of the directory each run's temporary files
// live in (TMPDIR of everything inside the namespace).
const TempPrefix = "statelab-run-"

// Reexec runs this executable again, with the same arguments, inside a new
// namespace, and returns the child's exit status. A child killed by a signal
// returns 128+signal, as a shell would.
//
// The child's TMPDIR is a directory the parent makes and removes when the
// child has exited, however it ended: a lab process killed with SIGKILL
// leaves no temporary file behind. (The child removes it too when it ends
// on its own, for the case where the parent was killed first.)
func Reexec() (int, error) {
	self, err := os.Executable()
	if err != nil {
		return 0, fmt.Errorf("sandbox: finding own executable: %w", err)
	}
	tmp, err := os.MkdirTemp("", TempPrefix)
	if err != nil {
		return 0, fmt.Errorf("sandbox: a directory for the lab's temporary files: %w", err)
	}
	defer os.RemoveAll(tmp)
	cmd := Command(self, os.Args[1:]...)
	cmd.Env = append(cmd.Env, "TMPDIR="+tmp, TempEnv+"="+tmp)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr

	// Pdeathsig fires when the thread that forked the child exits, so keep
	// this goroutine on one thread for the child's whole life.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, StopSignals...)
	defer signal.Stop(sigs)

	if err := cmd.Start(); err != nil {
		return 0, explain(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	forwarded := map[os.Signal]bool{}
	for {
		select {
		case s := <-sigs:
			forwarded[s] = true
			_ = cmd.Process.Signal(s)
		case err := <-done:
			if err == nil {
				return 0, nil
			}
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
					if !forwarded[ws.Signal()] {
						// Killed from outside (kill -9 of the lab
						// process): it could say nothing itself.
						fmt.Fprintf(os.Stderr, "%s: the lab process (pid %d) was killed by %s: the experiment in progress and its capture are lost; its temporary files are removed\n",
							filepath.Base(os.Args[0]), cmd.Process.Pid, unix.SignalName(ws.Signal()))
					}
					return 128 + int(ws.Signal()), nil
				}
				return ee.ExitCode(), nil
			}
			return 0, fmt.Errorf("sandbox: waiting for the lab: %w", err)
		}
	}
}

// Enter makes sure the rest of the program runs inside the lab's namespace.
// Outside, it re-executes the program there and exits with the child's
// status (it does not return). Inside, it brings the loopback up and returns.
// An *UnavailableError says namespaces cannot be had here.
//
// A process its parent vouched for (the pipe Marker names carries the
// nonce) that is nevertheless not in a namespace just made refuses with an
// error wrapping ErrNotInside instead of re-executing: it never runs the
// lab in a namespace it was not given, and never nests namespaces.
func Enter() error {
	if Inside() {
		return Setup()
	}
	if proof.vouched {
		return fmt.Errorf("sandbox: refusing to run the lab: %w. This process was started as the lab's inner process "+
			"but is not in a network namespace just made for it, so it runs nothing rather than share another's: "+
			"start statelab itself, not with an environment or descriptors copied from one", proof.err)
	}
	code, err := Reexec()
	if err != nil {
		return err
	}
	os.Exit(code)
	return nil
}

// Setup prepares the namespace from inside: it brings lo up, which gives the
// lab 127.0.0.0/8 and ::1.
func Setup() error {
	if err := LinkUp("lo"); err != nil {
		return fmt.Errorf("sandbox: bringing up the lab's loopback: %w", err)
	}
	return nil
}

// LinkUp sets IFF_UP on the named interface.
func LinkUp(name string) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS %s: %w", name, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCSIFFLAGS %s: %w", name, err)
	}
	return nil
}

// explain turns a failed clone into an UnavailableError naming the most
// likely reason on this machine and its remedy.
func explain(err error) error {
	u := &UnavailableError{Err: err,
		Reason: "the kernel or the container refused to create namespaces",
		Remedy: "Run statelab on a Linux host or VM that allows user namespaces, or in a container started with --privileged or a seccomp profile that allows unshare/clone.",
	}
	switch {
	case readSysctl("/proc/sys/user/max_user_namespaces") == "0":
		u.Reason = "user namespaces are disabled (user.max_user_namespaces = 0)"
		u.Remedy = "Enable them: sudo sysctl -w user.max_user_namespaces=15000"
	case readSysctl("/proc/sys/kernel/unprivileged_userns_clone") == "0":
		u.Reason = "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone = 0)"
		u.Remedy = "Enable them: sudo sysctl -w kernel.unprivileged_userns_clone=1"
	case readSysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1":
		u.Reason = "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns = 1)"
		u.Remedy = "Allow them: sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0, or add an AppArmor profile for statelab with the 'userns' permission"
	}
	return u
}

// procRoot is where explain reads kernel settings; tests point it elsewhere.
var procRoot = "/proc"

func readSysctl(path string) string {
	b, err := os.ReadFile(procRoot + strings.TrimPrefix(path, "/proc"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
