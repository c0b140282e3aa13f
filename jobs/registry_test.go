package jobs

import (
	"context"
	"testing"

	"github.com/riverqueue/river"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/jobargs"
)

// untimedWorker is a worker that forgot its Timeout.
type untimedWorker struct {
	river.WorkerDefaults[jobargs.LicenseExpireSweep]
}

func (untimedWorker) Work(context.Context, *river.Job[jobargs.LicenseExpireSweep]) error { return nil }

// TestRegistryRefusesAWorkerWithoutTimeout: a worker without its own Timeout would run under
// River's client-wide one, which LongestTimeout, and so the rescue bound, would not see.
func TestRegistryRefusesAWorkerWithoutTimeout(t *testing.T) {
	t.Parallel()
	r := &registry{workers: river.NewWorkers()}
	// The sweeps that had none, and the recompute that had ten minutes.
	add(r, &ReferralRecomputeSweepWorker{})
	add(r, &PayInReconcileSweepWorker{})
	add(r, &ReferralRecomputeWorker{})
	require.NoError(t, r.err)
	require.Equal(t, DefaultJobTimeout, r.longest)

	r = &registry{workers: river.NewWorkers()}
	add(r, &untimedWorker{})
	require.EqualError(t, r.err, "jobs: the license.expire_sweep worker has no Timeout")
}
