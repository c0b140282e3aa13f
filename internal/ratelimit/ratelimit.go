// Package ratelimit limits how often each key (a licence key, a client address) may do
// something, with a token bucket per key held in this process's memory.
package ratelimit

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter holds one token bucket per key. Buckets idle long enough to have refilled are
// forgotten, so memory stays bounded by the keys active recently. It is safe for
// concurrent use.
type Limiter struct {
	every rate.Limit
	burst int
	idle  time.Duration

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	limiter *rate.Limiter
	seen    time.Time
}

// New returns a limiter allowing perSecond events per key on average, in bursts of up to
// burst.
func New(perSecond float64, burst int) *Limiter {
	idle := time.Duration(float64(burst)/perSecond*float64(time.Second)) + time.Minute
	return &Limiter{every: rate.Limit(perSecond), burst: burst, idle: idle, buckets: map[string]*bucket{}}
}

// Allow takes a token from key's bucket at now. When the bucket is empty it returns false
// and how long until the next token.
func (l *Limiter) Allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > l.idle {
		for k, b := range l.buckets {
			if now.Sub(b.seen) > l.idle {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{limiter: rate.NewLimiter(l.every, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	r := b.limiter.ReserveN(now, 1)
	if delay := r.DelayFrom(now); delay > 0 {
		r.CancelAt(now)
		return false, delay
	}
	return true, 0
}
