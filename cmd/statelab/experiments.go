package main

// The packages whose experiments the catalogue holds; each registers its
// own in init.
import (
	_ "github.com/statelab/statelab/httpstate"
	_ "github.com/statelab/statelab/quicconn"
	_ "github.com/statelab/statelab/tcpstate"
	_ "github.com/statelab/statelab/udpdns"
)
