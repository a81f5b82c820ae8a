package quicconn

import "time"

// testTimeout bounds each wait of a test.
const testTimeout = 8 * time.Second
