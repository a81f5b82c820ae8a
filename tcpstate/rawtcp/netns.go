package rawtcp

import (
	"errors"
	"fmt"
	"os"
)

// ErrNamespace: the link was refused the current network namespace — the
// caller did not name it in LinkConfig.NetNS, named another, or it is PID
// 1's (the host's) without LinkConfig.AllowInitNetNS.
var ErrNamespace = errors.New("rawtcp: raw link refused in this network namespace")

// procRoot is where the namespaces are read (tests point it elsewhere).
var procRoot = "/proc"

// CurrentNetNS names the network namespace the process is in as the
// kernel does, "net:[4026532281]" (the target of /proc/self/ns/net): the
// value of LinkConfig.NetNS that lets the link alter it.
func CurrentNetNS() (string, error) {
	ns, err := os.Readlink(procRoot + "/self/ns/net")
	if err != nil {
		return "", fmt.Errorf("rawtcp: reading this process's network namespace: %w", err)
	}
	return ns, nil
}

// checkNetNS lets the link alter the current namespace only if the caller
// named it, and PID 1's only if allowInit.
func checkNetNS(want string, allowInit bool) error {
	cur, err := CurrentNetNS()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrNamespace, err)
	}
	switch {
	case want == "":
		return fmt.Errorf("%w: LinkConfig.NetNS is empty. The link installs an nftables rule and sends raw TCP segments in "+
			"the namespace it runs in (%s here); run it in a network namespace of its own (unshare -rn, ip netns exec, "+
			"a container) and set NetNS to rawtcp.CurrentNetNS() there", ErrNamespace, cur)
	case want != cur:
		return fmt.Errorf("%w: LinkConfig.NetNS is %s but this process is in %s", ErrNamespace, want, cur)
	}
	if initNS, err := os.Readlink(procRoot + "/1/ns/net"); err == nil && initNS == cur && !allowInit {
		return fmt.Errorf("%w: %s is PID 1's network namespace, the host's own: the RST rule would break the TCP of every "+
			"socket on the lab's ports there. Run in a namespace of your own, or set LinkConfig.AllowInitNetNS", ErrNamespace, cur)
	}
	return nil
}
