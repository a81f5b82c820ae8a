// Package annotate is the one definition of the machine-readable part of
// the lab's packet comments and of the Wireshark plugin that reads it.
//
// Every packet comment an experiment writes stays a sentence for people;
// its machine-readable part is a trailing block of key=value pairs,
//
//	kernel FIN-WAIT-1 … [statelab side=lab lab_state=CLOSING kernel_state=FIN-WAIT-1 cwnd=4380]
//
// whose keys are the fields of Table: their name (statelab.NAME in
// Wireshark), their type (a string or an unsigned number, so Wireshark's
// I/O graph can plot cwnd) and what they mean. Block formats it, Parse
// reads it back, and Lua generates wireshark/statelab.lua, the Lua
// post-dissector that turns the block into Wireshark fields with the same
// grammar (go generate ./lab/annotate; a test fails when the committed file
// differs from the generated one). The Wireshark profile's preferences,
// with a "Lab state" column, are generated from Table too.
//
// The grammar:
//
//	comment = text [" "] block          ; the block ends the comment
//	block   = "[statelab" *(" " pair) "]"
//	pair    = key "=" value             ; a key may repeat (one per coalesced QUIC packet)
//	key     = 1*("a"-"z" / "0"-"9" / "_") ; a name of Table
//	value   = bare / quoted
//	bare    = 1*(any byte but SP " \ [ ] = and controls)
//	quoted  = DQUOTE *(any byte but " \ [ ] and controls / "\" (DQUOTE / "\" / "[" / "]")) DQUOTE
//
// Values never hold a raw "[" or "]", so a block starts at the last
// "[statelab" of its comment.
//
//	table.go  Field, Type, Table: the fields and what they mean
//	block.go  Block: the formatter the experiments use
//	parse.go  Parse: the reader, fuzzed
//	lua.go    Lua, Preferences: the plugin and the profile generated from Table
//	gen.go    go generate's program: writes them to wireshark/
package annotate
