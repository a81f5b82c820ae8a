// Package udpdns matches DNS replies to queries over one stateless UDP socket:
// many queries in flight, replies accepted only when ID, question and source
// all match (RFC 5452 §9.1), forgeries rejected and counted.
//
// The Client (client.go, socket.go) keeps a table of calls in flight per
// socket, indexed by the 16-bit ID, guarded by one mutex; IDs come from
// crypto/rand (or a seeded source: Config.Rand, or one per query with
// ExchangeRand, for repeatable runs), are never reused while in flight, and
// rest in quarantine after
// a timeout or cancellation (Config.Quarantine) and after an answer
// (Config.Linger), so a late or duplicate reply is counted as such and never
// completes a newer query (miekg/dns issue 1156). The reply path parses only
// the header and question (ParseHead, allocation-free, fuzzed) and unpacks
// the whole message with miekg/dns only once every check has passed. An ID
// is a uniform 16-bit draw kept when free, so a seeded source gives the same
// IDs however earlier ones came and went; after four misses (a table nearly
// full) it is picked by position from a free set (O(1) however full); resting
// IDs wait in two time-ordered queues (quarantine, linger) and return to the
// set when their time is up, so the earliest to free is always at a head.
// Reads and writes are one system call per datagram by default; batching
// with recvmmsg/sendmmsg (golang.org/x/net ReadBatch, WriteBatch) is opt-in
// (Config.ReadBatch, Config.WriteBatch), as BenchmarkExchange and
// BenchmarkSend measured neither faster on loopback.
//
// The Server (server.go, zone.go) is a stateless miekg/dns server with knobs
// to delay, reorder, drop, duplicate, hold and answer from another address,
// and can be stopped and started again on the same port. Its random draws
// come from the seed and each query, not from the order queries arrive in;
// it counts the datagrams it writes (ServerStats.Written, and a tally file
// that outlives a killed server process).
//
// Experiments: dns/id-matching, dns/spoofing, dns/loss, dns/server-restart,
// dns/client-gone (exp_*.go). Each first checks its capture against what
// the sources counted — queries the client sent, datagrams the server and
// the forger wrote, ICMP messages the kernel sent (/proc/net/snmp) — so a
// short capture fails only that check; takes every random choice from the
// run's seed (one stream per query, first attempts sent in index order);
// draws its "as captured" ladders from captured packets alone; and comments
// every packet.
package udpdns
