// Package tcpstate is a user-space TCP (RFC 9293) endpoint written as a pure,
// table-driven state machine, and the driver that puts it on raw sockets
// against the Linux kernel's TCP.
package tcpstate
