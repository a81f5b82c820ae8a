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
// the header and question (ParseHead, allocation-free, fuzzed), and once
// every check has passed it checks the bounds of the records (walk.go,
// allocation-free, never stricter than miekg/dns); the message is unpacked
// with miekg/dns by Call.Reply, on the caller's goroutine, and on the reader
// only when cookies need its OPT record. An ID
// is a uniform 16-bit draw kept when free, so a seeded source gives the same
// IDs however earlier ones came and went; after four misses (a table nearly
// full) it is picked by position from a free set (O(1) however full); resting
// IDs wait in two time-ordered queues (quarantine, linger) and return to the
// set when their time is up, so the earliest to free is always at a head.
// Reads and writes are one system call per datagram by default; batching
// with recvmmsg/sendmmsg (golang.org/x/net ReadBatch, WriteBatch) is opt-in
// (Config.ReadBatch, Config.WriteBatch). With goroutines calling Exchange,
// BenchmarkExchange and BenchmarkSend measured neither faster on loopback;
// with SendFunc, whose completions run on the reader and send the next
// queries from there, the reader holds the writer's role while it handles a
// batch, so those queries leave together: `statelab bench dns` measured
// batches of 64 at 1.4–2× less CPU per query than single reads and writes.
//
// The Server (server.go) serves any miekg/dns Handler on one UDP socket:
// it starts on a given address or port 0, returns from Start once it
// serves (Addr says where), counts what the handler wrote (ServerStats),
// and can be stopped and started again on the same port. A handler that
// answers later hijacks its writer and closes it when done; Stop ends
// those answers' context and waits for them. The Zone (zone.go) is one
// Handler: an authoritative zone in memory (the built-in lab. with the
// NAME.synth.lab. subtree, or a master file of at most 1 MiB making at
// most 100,000 records and 16 MiB of them), stateless, the same answer for
// the same query. Faults — delay, jitter, drop, duplicate, hold, answer
// from another address — are middleware around any Handler, in
// udpdns/dnsfault.
//
// DNS cookies (RFC 7873) are opt-in on both sides: the client
// (Config.Cookies) sends an 8-byte client cookie and, once learned, the
// server's; from then on it rejects answers without its cookie
// (MissingCookie, WrongCookie) and retries once after BADCOOKIE. The
// server (ServerConfig.Cookies) makes RFC 9018 server cookies — SipHash-2-4
// keyed by one secret over the client cookie, version, timestamp and the
// client's address — and checks them by recomputing: no table per client.
// A UDP answer larger than the query's EDNS0 buffer goes out truncated
// with TC set; the client's Config.TCPFallback asks again over TCP.
//
// Files: client.go (Config, Client, Call, Exchange), socket.go (one socket:
// its table of calls, ID allocation and rest, the reply path), wire.go
// (ParseHead), stats.go (Stats, Reason), errors.go, server.go, zone.go,
// cookie.go (ParseCookie, Cookies: making and checking), siphash.go,
// clientcookie.go (the client's cookie), clienttcp.go (the TCP fallback).
// The lab's dns/* experiments, their capture analysis and the bench are in
// experiments/dnsexp; this package imports nothing of the lab.
package udpdns
