package httpstate

import (
	"context"
	"errors"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// ErrUnconfirmed means a session write reached the primary but not the
// replicas asked for (WAIT) in time: the request is answered 503, as a
// store failure, and nothing is acknowledged. The write may still be on
// the primary; if the primary dies before a replica has it, it is gone,
// and no client was told otherwise.
var ErrUnconfirmed = errors.New("httpstate: session write not confirmed by the replicas")

// runConfirmed runs the compare-and-set and WAIT in one pipeline on one
// connection, so that WAIT waits for this write: Redis answers WAIT with
// how many replicas have acknowledged everything this connection wrote.
// A primary that has just taken over lacks the script (scripts are not
// replicated): then it is sent whole, once.
func (s *redisSessions) runConfirmed(ctx context.Context, keys []string, args []any) ([]any, error) {
	for try := range 2 {
		pipe := s.client.Pipeline()
		var ev *redis.Cmd
		if try == 0 {
			ev = redisCompareAndSet.EvalSha(ctx, pipe, keys, args...)
		} else {
			ev = redisCompareAndSet.Eval(ctx, pipe, keys, args...)
		}
		wait := pipe.Do(ctx, "wait", s.confirm, s.confirmTimeout.Milliseconds())
		_, _ = pipe.Exec(ctx) // each command's error is its own
		if err := ev.Err(); err != nil {
			if try == 0 && redis.HasErrorPrefix(err, "NOSCRIPT") {
				continue
			}
			return nil, err
		}
		res, err := ev.Slice()
		if err != nil {
			return nil, err
		}
		n, err := wait.Int64()
		if err != nil {
			return nil, fmt.Errorf("%w: WAIT: %w", ErrUnconfirmed, err)
		}
		if n < int64(s.confirm) {
			s.unconfirmed.Add(1)
			return nil, fmt.Errorf("%w: %d of %d replicas within %s", ErrUnconfirmed, n, s.confirm, s.confirmTimeout)
		}
		return res, nil
	}
	return nil, fmt.Errorf("httpstate: compare-and-set: NOSCRIPT after sending the script")
}
