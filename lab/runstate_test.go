package lab

import (
	"sync"
	"testing"
)

type runStateKey struct{}

func TestRunStateLoadOrStoreMakesOneValuePerRun(t *testing.T) {
	var s RunState
	const askers = 8
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		made  int
		got   [askers]*int
		start = make(chan struct{})
	)
	for i := range askers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			got[i] = s.LoadOrStore(runStateKey{}, func() any {
				mu.Lock()
				made++
				mu.Unlock()
				return new(int)
			}).(*int)
		}()
	}
	close(start)
	wg.Wait()
	if made != 1 {
		t.Errorf("the value was made %d times, want once", made)
	}
	for i, p := range got {
		if p != got[0] {
			t.Errorf("asker %d got %p, asker 0 %p: want the same value", i, p, got[0])
		}
	}
	if v, ok := s.Load(runStateKey{}); !ok || v.(*int) != got[0] {
		t.Errorf("Load = %v, %v; want the stored value", v, ok)
	}
	var other RunState
	if other.LoadOrStore(runStateKey{}, func() any { return new(int) }).(*int) == got[0] {
		t.Error("another run's state shares the value")
	}
}
