package main

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/bench/liverenewals"
	"github.com/tessera/tessera/internal/testdb"
)

// TestMeasureReportsMedians: the pick-latency run (bench/run's `-subscriptions N -runs R`)
// returns a median for each sweep's selection, which run records with bench/internal/report,
// so make bench's table has its numbers.
func TestMeasureReportsMedians(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, _ := testdb.Clone(t)
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	require.NoError(t, liverenewals.Generate(ctx, pool, now, 2000))

	results, err := measure(ctx, pool, now, 1, "../../sql/renewals.sql.go")
	require.NoError(t, err)
	require.Len(t, results, 2)
	for i, name := range []string{
		"SubscriptionListDueAllTenants (batch 500) at 2000 subscriptions, median",
		"SubscriptionLapseDueAllTenants (batch 1000) at 2000 subscriptions, median",
	} {
		require.Equal(t, name, results[i].Name)
		require.Equal(t, "ms", results[i].Unit)
		require.Positive(t, results[i].Value)
	}
}
