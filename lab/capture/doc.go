// Package capture records what crosses the lab namespace's loopback with a
// packet socket and writes it as pcapng through gopacket's pcapgo, with the
// experiment named in the section and interface blocks, a comment beside any
// packet the experiment knows something about, and TLS/QUIC key logs embedded
// as a decryption-secrets block so Wireshark decrypts with no setup.
//
// A capture is taken in three steps: Start opens the socket (traffic before
// it is not seen), Stop drains what the kernel has queued and stops reading,
// and Close writes the file. Between Stop and Close the experiment reads the
// packets, measures from them and attaches comments. Close writes a valid
// file even when the experiment failed half-way; the runner calls it on every
// path, including Ctrl-C.
//
// The files, one concept each:
//
//	capture.go  Start, Stop/StopWhen and Close: the TPACKET_V3 ring, its
//	            reader, and a stop that reads the ring to its end
//	filter.go   the kernel filter that keeps one copy of each loopback packet
//	packet.go   Packet (data, timestamp, comments) and Meta, its decoded
//	            addresses and ports
//	stream.go   TCPStreams: a capture's TCP segments by connection
//	write.go    WriteFile: pcapng with comments and decryption secrets
//	read.go     ReadFile, Parse and Secrets: a pcapng read back (tests, tools)
package capture
