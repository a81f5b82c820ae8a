package httpexp

import (
	"errors"
	"fmt"
	"os/exec"
	"sync"

	"github.com/statelab/statelab/httpstate"
	"github.com/statelab/statelab/lab"
)

// The comparison table's "store failure" row. http/mechanisms prints the
// table and runs before http/store-failover (catalogue order), so it
// measures the row itself: the two kill cases of http/store-failover (a
// primary killed with the replicas' link held, asynchronous and with WAIT
// 1), with their checks of what was lost but without a capture of their
// own. A run in which http/store-failover went first gives its figures
// instead (the run's state).

// measureStoreFailure fills the "store failure" row for env's run.
func measureStoreFailure(env *lab.Env, rig *rig) error {
	if v, ok := env.RunState().Load(failoverKey{}); ok {
		recordStoreFailure(env, v.(failoverFigures).cell()+" (measured by http/store-failover)")
		return nil
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		recordStoreFailure(env, "no replicated store in this run: redis-server is not installed")
		return nil
	}
	httpstate.QuietRedisLog()
	cases := failoverCases()[:2]
	for _, c := range cases {
		c.name = "store failure, " + c.name
	}
	ports := &portSet{set: map[uint16]bool{}}
	errs := make([]error, len(cases))
	var wg sync.WaitGroup
	for i, c := range cases {
		wg.Go(func() {
			if err := c.run(env, rig, ports); err != nil {
				errs[i] = fmt.Errorf("store failure, %s: %w", c.name, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, c := range cases {
		c.check(env)
	}
	fig, _ := figuresOf(cases)
	recordStoreFailure(env, fig.cell())
	return nil
}
