module example.com/own-experiment

go 1.26.0

require github.com/statelab/statelab v0.0.0

require (
	github.com/gopacket/gopacket v1.7.7 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)

replace github.com/statelab/statelab => ../..
