// Package jobargs holds the args of every River job: the contract between whoever enqueues
// a job (the API, a shared step, another job) and the worker in package jobs. It imports no
// other Tessera package, so anyone can enqueue in their transaction without import cycles.
package jobargs

import (
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// uniqueWhileUnfinished makes a job unique by its args among jobs not yet finished
// (available, pending, retryable, running, scheduled): a duplicate of a job still to run is
// not inserted, but a finished job — completed, cancelled or discarded — never stops a new
// one, so a sweep can enqueue again the work of a job that was lost or cancelled.
func uniqueWhileUnfinished() river.UniqueOpts {
	return river.UniqueOpts{
		ByArgs: true,
		ByState: []rivertype.JobState{
			rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
			rivertype.JobStateRunning, rivertype.JobStateScheduled,
		},
	}
}
