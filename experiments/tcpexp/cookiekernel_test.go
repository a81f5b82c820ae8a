package tcpexp

import (
	"strings"
	"testing"
)

func TestCookieKernel(t *testing.T) {
	const iss, cookie, normal = 1000, 5000, 7000
	syn := wseg{fromLab: true, flags: wSYN, seq: iss}
	synAck := func(isn uint32) wseg { return wseg{flags: wSYN | wACK, seq: isn, ack: iss + 1} }
	ack := func(a uint32) wseg { return wseg{fromLab: true, flags: wACK, seq: iss + 1, ack: a} }
	rst := wseg{flags: wRST, seq: cookie + 2}
	isCookie := func(isn uint32) bool { return isn == cookie }
	type want struct{ state, note string }
	tests := []struct {
		name string
		segs []wseg
		want []want
	}{
		{"a cookie'd handshake: no socket until the final ACK", []wseg{syn, synAck(cookie), ack(cookie + 1)}, []want{
			{kListen, "keeps no request socket"}, {kListen, "ISN is the SYN cookie"}, {kEstablished, "only now"}}},
		{"a forged ACK is refused with RST, the true one then completes", []wseg{syn, synAck(cookie), ack(cookie + 2), rst, ack(cookie + 1)}, []want{
			{kListen, "keeps no request socket"}, {kListen, "SYN cookie"}, {kListen, "SyncookiesFailed"}, {kListen, "matches no socket and no cookie"}, {kEstablished, "only now"}}},
		{"a SYN the queue had room for: a request socket, retransmitting", []wseg{syn, synAck(normal), synAck(normal)}, []want{
			{kSynReceived, "SYN queue had room"}, {kSynReceived, "sent by the request socket"}, {kSynReceived, "retransmitted by the request socket"}}},
		{"a request socket completes", []wseg{syn, synAck(normal), ack(normal + 1)}, []want{
			{kSynReceived, ""}, {kSynReceived, ""}, {kEstablished, "request socket becomes the connection"}}},
		{"SYNs again on one 4-tuple: each cookie'd, none kept", []wseg{syn, synAck(cookie), syn, synAck(cookie)}, []want{
			{kListen, "keeps no request socket"}, {kListen, "SYN cookie"}, {kListen, "keeps no request socket"}, {kListen, "SYN cookie"}}},
		{"a SYN nobody answered", []wseg{syn}, []want{{kListen, "no SYN-ACK answers"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := cookieKernel(tt.segs, isCookie)
			for i, w := range tt.want {
				if got[i].state != w.state || !strings.Contains(got[i].note, w.note) {
					t.Errorf("segment %d: %s %q, want %s with %q", i, got[i].state, got[i].note, w.state, w.note)
				}
			}
		})
	}
}
