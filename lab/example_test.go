package lab_test

import (
	"fmt"
	"strings"

	"github.com/statelab/statelab/lab"
)

// A ladder diagram as the seeds draw them, each side's state beside the
// arrow that changed it.
func ExampleLadder() {
	l := &lab.Ladder{Left: "client", Right: "stateful server"}
	l.Send("POST /calculate add(10, 5)", "", "")
	l.Reply("200 result=15", "keeps cookie", "last_result=15")
	l.Send("POST /use_last multiply(2)", "", "")
	l.Reply("200 result=30", "keeps cookie", "last_result=30")
	var b strings.Builder
	l.Render(&b)
	fmt.Print(b.String())
	// Output:
	//   client                                                        stateful server
	//                │── POST /calculate add(10, 5) ───────────────►│
	//   keeps cookie │◄─ 200 result=15 ─────────────────────────────│ last_result=15
	//                │── POST /use_last multiply(2) ───────────────►│
	//   keeps cookie │◄─ 200 result=30 ─────────────────────────────│ last_result=30
}
