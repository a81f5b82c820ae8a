// Package quicconn shows QUIC connection IDs keeping a connection alive across
// a simulated address migration, with captures Wireshark decrypts unaided.
package quicconn
