module github.com/statelab/statelab

go 1.26.0

require (
	github.com/alexedwards/scs/v2 v2.9.0
	github.com/gopacket/gopacket v1.7.7
	golang.org/x/sys v0.50.0
)

require (
	github.com/miekg/dns v1.1.73 // indirect
	github.com/quic-go/quic-go v0.65.0 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/net v0.62.0 // indirect
)
