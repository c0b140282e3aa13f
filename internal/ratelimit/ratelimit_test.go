package ratelimit_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/ratelimit"
)

func TestLimiter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := ratelimit.New(2, 3)

	for range 3 {
		ok, _ := l.Allow("a", now)
		require.True(t, ok, "the burst passes")
	}
	ok, retry := l.Allow("a", now)
	require.False(t, ok)
	require.Equal(t, 500*time.Millisecond, retry)

	ok, _ = l.Allow("b", now)
	require.True(t, ok, "keys are independent")

	ok, _ = l.Allow("a", now.Add(500*time.Millisecond))
	require.True(t, ok, "a token refills after 1/rate")
	ok, _ = l.Allow("a", now.Add(500*time.Millisecond))
	require.False(t, ok, "a refused request takes no token, the next one still waits")
}
