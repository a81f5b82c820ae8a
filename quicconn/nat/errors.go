package nat

import "errors"

// ErrNAT wraps what a NAT could not do: listen, bind, open a raw socket,
// send a crafted segment.
var ErrNAT = errors.New("nat")
