package jobs

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/testdb"
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

// untaggedArgs carry a tenant but forgot to be a jobargs.TenantJob.
type untaggedArgs struct {
	TenantID uuid.UUID `json:"tenant_id"`
}

func (untaggedArgs) Kind() string { return "test.untagged" }

type untaggedWorker struct {
	river.WorkerDefaults[untaggedArgs]
}

func (untaggedWorker) Work(context.Context, *river.Job[untaggedArgs]) error { return nil }
func (untaggedWorker) Timeout(*river.Job[untaggedArgs]) time.Duration       { return time.Second }

// TestRegistryRefusesUntaggedTenantArgs: a job that carries a tenant_id must be tagged with
// it, or its tenant would not see it in the jobs API.
func TestRegistryRefusesUntaggedTenantArgs(t *testing.T) {
	t.Parallel()
	r := &registry{workers: river.NewWorkers()}
	add(r, &untaggedWorker{})
	require.EqualError(t, r.err, "jobs: the test.untagged args carry a tenant_id but are not a jobargs.TenantJob")
}

// TestTenantJobsAreTagged inserts a job of every registered kind, through a River client
// configured with nothing, as any code path does: a tenant job carries its tenant's tag and
// metadata, a cross-tenant job neither, and unique jobs stay unique.
func TestTenantJobsAreTagged(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r, err := register(Config{})
	require.NoError(t, err)
	client, err := river.NewClient(riverpgxv5.New(nil), &river.Config{})
	require.NoError(t, err)
	tenantID := uuid.New()
	// withTenant returns the kind's args with a tenant, when they have one, from their JSON.
	withTenant := func(t *testing.T, zero river.JobArgs) river.JobArgs {
		t.Helper()
		args := reflect.New(reflect.TypeOf(zero))
		require.NoError(t, json.Unmarshal([]byte(`{"tenant_id":"`+tenantID.String()+`","provider":"btcpay","invoice_id":"inv"}`), args.Interface()))
		return args.Elem().Interface().(river.JobArgs)
	}

	var tenantKinds []string
	for _, zero := range r.args {
		if _, ok := withTenant(t, zero).(jobargs.TenantJob); ok {
			tenantKinds = append(tenantKinds, zero.Kind())
		}
		t.Run(zero.Kind(), func(t *testing.T) {
			t.Parallel()
			tx := testdb.Tx(t)
			job := withTenant(t, zero)

			res, err := client.InsertManyTx(ctx, tx, []river.InsertManyParams{{Args: job}})
			require.NoError(t, err)
			var tags []string
			var metadata map[string]any
			require.NoError(t, tx.QueryRow(ctx, `SELECT tags, metadata FROM river_job WHERE id = $1`, res[0].Job.ID).Scan(&tags, &metadata))
			if _, ok := job.(jobargs.TenantJob); !ok {
				require.Empty(t, tags)
				require.NotContains(t, metadata, jobargs.MetadataTenantID)
				return
			}
			require.Equal(t, []string{jobargs.TenantTag(tenantID)}, tags)
			require.Equal(t, tenantID.String(), metadata[jobargs.MetadataTenantID])

			again, err := client.InsertManyTx(ctx, tx, []river.InsertManyParams{{Args: job}})
			require.NoError(t, err)
			require.True(t, again[0].UniqueSkippedAsDuplicate, "the tag broke the job's uniqueness")
			require.Equal(t, res[0].Job.ID, again[0].Job.ID)
		})
	}
	require.ElementsMatch(t, []string{"clock.advance", "payin.create_invoice", "payin.invalidate_invoice", "referral.recompute", "revocation.check_tenant",
		"subscription.renew", "webhook.deliver"}, tenantKinds)

	t.Run("NoTenant", func(t *testing.T) {
		t.Parallel()
		tx := testdb.Tx(t)
		_, err := client.InsertManyTx(ctx, tx, []river.InsertManyParams{{Args: jobargs.ReferralRecompute{}}})
		require.ErrorContains(t, err, "insert referral.recompute: a tenant job needs its tenant id")
	})
}
