package rawtcp

// SetNoDelay switches the connection's Nagle algorithm off (noDelay true)
// or on, as (*net.TCPConn).SetNoDelay does on a kernel socket (TCP_NODELAY).
// A lab connection starts with its engine configuration's NoDelay (false:
// Nagle on, as a Linux socket; Go's net package turns it off on its own
// sockets). Switching Nagle off sends what it was holding.
func (c *Conn) SetNoDelay(noDelay bool) error {
	c.mu.Lock()
	defer c.unlock()
	if c.gone {
		return c.goneErr
	}
	before := c.ep.State()
	c.ep.SetNoDelay(c.clock(), noDelay, &c.out)
	c.flush(before, nil)
	return nil
}
