package tcpstate_test

import (
	"time"

	. "github.com/statelab/statelab/tcpstate"
	"github.com/statelab/statelab/tcpstate/tcptest"
)

// The engine's state tests script the peer with tcptest, as a user's tests
// would; tcpstate is dot-imported because this external test package
// cannot be the package itself (tcptest imports it). The numbers are
// RFC 9293's examples: ours 100, the peer's 300.
const (
	localPort        = tcptest.LocalPort
	peerPort         = tcptest.PeerPort
	localISS         = tcptest.LocalISS
	peerISS          = tcptest.PeerISS
	testRcvBuf       = 64000
	testMSS          = 1000
	testMinRTO       = 200 * time.Millisecond
	testInitRTO      = time.Second
	testMSL          = 2 * time.Second
	testMaxRetry     = 4
	testChallenge    = 3
	testChallengeDur = time.Second
)

func testConfig() Config {
	return Config{
		MSS:                  testMSS,
		SendBufferSize:       64000,
		RecvBufferSize:       testRcvBuf,
		InitialRTO:           testInitRTO,
		MinRTO:               testMinRTO,
		MaxRTO:               8 * time.Second,
		MSL:                  testMSL,
		MaxRetries:           testMaxRetry,
		ChallengeACKLimit:    testChallenge,
		ChallengeACKInterval: testChallengeDur,
		ISS:                  func() Seq { return localISS },
	}
}
