package httpstate

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// QuietRedisLog silences go-redis's own log in this process: its failover
// client writes every Sentinel it selects and every dial that fails to
// stderr, in its words and with its source lines, while httpstate already
// returns what went wrong as an error. A program calls it; importing
// httpstate changes nothing.
func QuietRedisLog() { quietOnce.Do(func() { redis.SetLogger(quietLogger{}) }) }

var quietOnce sync.Once

// quietLogger drops every line.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}
