package httpstate

import "testing"

// A server counts a request once its handler has answered it: after the
// client has read n replies the count is n.
func TestRunningCountsAnsweredRequests(t *testing.T) {
	for _, n := range []int{0, 1, 5} {
		t.Run(string(rune('0'+n))+" requests", func(t *testing.T) {
			_, run := serve(t, Stateless)
			c := NewClient(run.URL(), false)
			defer c.Close()
			for range n {
				if _, err := c.Post(t.Context(), "/calculate", CalcRequest{Op: Add, A: num(1), B: num(2)}); err != nil {
					t.Fatal(err)
				}
			}
			if got := run.Answered(); got != n {
				t.Fatalf("Answered() = %d after %d replies", got, n)
			}
		})
	}
}
