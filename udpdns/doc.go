// Package udpdns matches DNS replies to queries over one stateless UDP socket:
// many queries in flight, replies accepted only when ID, question and source
// all match (RFC 5452 §9.1), forgeries rejected and counted.
package udpdns
