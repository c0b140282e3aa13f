package jobs_test

import (
	"context"
	"log/slog"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/jobs"
	"github.com/tessera/tessera/sql"
)

func TestWorkers(t *testing.T) {
	t.Parallel()

	valid := func(t *testing.T) jobs.Config {
		t.Helper()
		return jobs.Config{
			DB:       testdb.Tx(t),
			Clock:    clock.NewManual(factory.Now),
			Log:      slog.New(slog.DiscardHandler),
			Box:      factory.Box,
			Payments: factory.FakeBTCPay(t, "").Client,
			Rates:    factory.Rates(t),
		}
	}

	t.Run("Valid", func(t *testing.T) {
		t.Parallel()
		workers, err := jobs.Workers(valid(t))
		require.NoError(t, err)
		require.NotNil(t, workers)
	})

	for _, tt := range []struct {
		name    string
		mutate  func(*jobs.Config)
		wantErr string
	}{
		{name: "MissingDB", mutate: func(c *jobs.Config) { c.DB = nil }, wantErr: "jobs: Config.DB is required"},
		{name: "MissingClock", mutate: func(c *jobs.Config) { c.Clock = nil }, wantErr: "jobs: Config.Clock is required"},
		{name: "MissingLog", mutate: func(c *jobs.Config) { c.Log = nil }, wantErr: "jobs: Config.Log is required"},
		{name: "MissingBox", mutate: func(c *jobs.Config) { c.Box = nil }, wantErr: "jobs: Config.Box is required"},
		{name: "MissingPayments", mutate: func(c *jobs.Config) { c.Payments = nil }, wantErr: "jobs: Config.Payments is required"},
		{name: "MissingRates", mutate: func(c *jobs.Config) { c.Rates = nil }, wantErr: "jobs: Config.Rates is required"},
		{name: "NegativeBatch", mutate: func(c *jobs.Config) { c.Batches.IdempotencyExpire = -1 }, wantErr: "jobs: Config.Batches.IdempotencyExpire must be between 1 and 2147483647"},
		{name: "BatchPastInt32", mutate: func(c *jobs.Config) { c.Batches.LicenseExpire = math.MaxInt32 + 1 }, wantErr: "jobs: Config.Batches.LicenseExpire must be between 1 and 2147483647"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := valid(t)
			tt.mutate(&cfg)
			workers, err := jobs.Workers(cfg)
			require.EqualError(t, err, tt.wantErr)
			require.Nil(t, workers)
		})
	}
}

// TestLongestTimeout: every worker has its own timeout, and the longest bounds River's rescue
// of orphaned jobs.
func TestLongestTimeout(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name    string
		cfg     jobs.Config
		want    time.Duration
		wantErr string
	}{
		// webhook.deliver: 2 × 10 s + 1 m to record (revocation.check: 1 × (10 s + 5 s) + 1 m).
		{name: "Defaults", want: 80 * time.Second},
		{name: "RevocationCheck", cfg: jobs.Config{JobTimeout: 2 * time.Second, WebhookTimeout: time.Second, Revocation: jobs.RevocationConfig{Timeout: time.Second}}, want: 8 * time.Second},
		{name: "WebhookDelivery", cfg: jobs.Config{JobTimeout: 2 * time.Second, WebhookTimeout: time.Minute}, want: 2*time.Minute + 2*time.Second},
		{name: "JobTimeout", cfg: jobs.Config{JobTimeout: 5 * time.Minute, WebhookTimeout: time.Second, Revocation: jobs.RevocationConfig{Timeout: time.Second}}, want: 5*time.Minute + 6*time.Second},
		{name: "NegativeJobTimeout", cfg: jobs.Config{JobTimeout: -time.Second}, wantErr: "jobs: Config.JobTimeout must be positive"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := jobs.LongestTimeout(tt.cfg)
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

// TestPeriodicJobs runs a real River client on its own database with Tessera's workers and
// schedule: every periodic job runs as soon as the client starts (RunOnStart), and the
// idempotency sweep deletes a committed expired key.
func TestPeriodicJobs(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool, _ := testdb.Clone(t)
	tenant := factory.Tenant(t, pool)
	queries := sql.New()
	require.NoError(t, queries.IdempotencyKeyStore(ctx, pool, sql.IdempotencyKeyStoreParams{
		TenantID: tenant.ID, Scope: "admin", Key: "expired", RequestHash: make([]byte, 32), ResponseStatus: 201,
		ResponseHeaders: []byte(`{}`), ResponseBody: []byte(`{}`),
		Now: factory.Now.Add(-48 * time.Hour), ExpiresAt: factory.Now.Add(-24 * time.Hour),
	}))

	log := slog.New(slog.DiscardHandler)
	cfg := jobs.Config{DB: pool, Clock: clock.NewManual(factory.Now), Log: log, Box: factory.Box, Payments: factory.FakeBTCPay(t, "").Client, Rates: factory.Rates(t)}
	workers, err := jobs.Workers(cfg)
	require.NoError(t, err)
	periodic, err := jobs.PeriodicJobs(cfg)
	require.NoError(t, err)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Logger:       log,
		Queues:       map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 1}},
		Workers:      workers,
		PeriodicJobs: periodic,
		TestOnly:     true, // no staggered start of the leader's services
	})
	require.NoError(t, err)
	events, cancel := client.Subscribe(river.EventKindJobCompleted, river.EventKindJobFailed)
	t.Cleanup(cancel)
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { require.NoError(t, client.Stop(context.WithoutCancel(ctx))) })

	pending := map[string]bool{jobargs.IdempotencyExpireSweep{}.Kind(): true, jobargs.EventRetentionSweep{}.Kind(): true,
		jobargs.LicenseExpireSweep{}.Kind(): true, jobargs.PayInReconcileSweep{}.Kind(): true,
		jobargs.ReferralRecomputeSweep{}.Kind(): true, jobargs.SubscriptionRenewSweep{}.Kind(): true,
		jobargs.SubscriptionLapseSweep{}.Kind(): true, jobargs.WebhookDeliverSweep{}.Kind(): true,
		jobargs.RevocationCheck{}.Kind(): true}
	for len(pending) > 0 {
		select {
		case event := <-events:
			require.Equal(t, river.EventKindJobCompleted, event.Kind, "job %s", event.Job.Kind)
			require.Equal(t, rivertype.JobStateCompleted, event.Job.State)
			delete(pending, event.Job.Kind)
		case <-time.After(30 * time.Second):
			require.FailNow(t, "periodic sweeps did not run on start", "%v", pending)
		}
	}

	_, err = queries.IdempotencyKeyGet(ctx, pool, sql.IdempotencyKeyGetParams{
		TenantID: tenant.ID, Key: "expired", Now: factory.Now.Add(-48 * time.Hour),
	})
	require.ErrorIs(t, err, pgx.ErrNoRows, "the sweep deleted the expired key")
}
