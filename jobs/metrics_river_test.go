package jobs

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/metrics"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// observed is a River client working all of Tessera's workers on the test's own database with
// the Metrics middleware, and the registry and log that it reports to.
type observed struct {
	*renewals
	pool     *pgxpool.Pool
	client   *river.Client[pgx.Tx]
	registry *prometheus.Registry
	log      *factory.Output
}

func setupObserved(t *testing.T) *observed {
	t.Helper()
	pool, _ := testdb.Clone(t)
	b := &observed{renewals: setupRenewals(t, pool), pool: pool, registry: prometheus.NewRegistry(), log: &factory.Output{}}
	domain, err := metrics.NewDomain(b.registry)
	require.NoError(t, err)
	middleware, err := NewMetrics(b.registry, domain, slog.New(slog.NewTextHandler(b.log, nil)))
	require.NoError(t, err)
	workers, err := Workers(b.cfg)
	require.NoError(t, err)
	b.client, err = river.NewClient(riverpgxv5.New(pool), &river.Config{
		Logger: slog.New(slog.DiscardHandler), Workers: workers, TestOnly: true,
		Middleware:    []rivertype.Middleware{middleware},
		Queues:        map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 4}},
		FetchCooldown: 20 * time.Millisecond, FetchPollInterval: 50 * time.Millisecond,
	})
	require.NoError(t, err)
	require.NoError(t, b.client.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		require.NoError(t, b.client.StopAndCancel(ctx))
	})
	return b
}

// renew enqueues the renewal of the first cycle of a subscription and returns its job's id.
func (b *observed) renew(t *testing.T, s sql.Subscription, maxAttempts int) int64 {
	t.Helper()
	res, err := b.client.Insert(context.Background(), jobargs.SubscriptionRenew{TenantID: s.TenantID, SubscriptionID: s.ID, CycleNumber: 1},
		&river.InsertOpts{MaxAttempts: maxAttempts})
	require.NoError(t, err)
	return res.Job.ID
}

// value is the value of the counter, or the sample count of the histogram, name with labels
// in the registry; 0 when it has no such series.
func (b *observed) value(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := b.registry.Gather()
	require.NoError(t, err)
	for _, family := range families {
		if family.GetName() != name {
			continue
		}
	series:
		for _, m := range family.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue series
				}
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// await waits until the series name with labels has value want.
func (b *observed) await(t *testing.T, want float64, name string, labels map[string]string) {
	t.Helper()
	require.Eventually(t, func() bool { return b.value(t, name, labels) == want }, waitFor, 20*time.Millisecond,
		"%s%v is %v, not %v", name, labels, b.value(t, name, labels), want)
}

// jobsTotal is the labels of tessera_jobs_total for kind and outcome.
func jobsTotal(kind, outcome string) map[string]string {
	return map[string]string{"kind": kind, "outcome": outcome}
}

// waitFor bounds the waits of the metrics tests.
const waitFor = 30 * time.Second

func TestMetricsCountJobRuns(t *testing.T) {
	t.Parallel()

	t.Run("ACompletedRenewalCountsOnceWithItsOutcomes", func(t *testing.T) {
		t.Parallel()
		b := setupObserved(t)
		sub, _ := b.subscription(t, sql.CurrencySAT, 50_000)
		b.clock.Advance(30 * 24 * time.Hour)
		b.renew(t, sub, 0)

		// The renewal opens the cycle with its PayIn; the PayIn's invoice job follows.
		b.await(t, 1, "tessera_jobs_total", jobsTotal("payin.create_invoice", OutcomeCompleted))
		require.Equal(t, float64(1), b.value(t, "tessera_jobs_total", jobsTotal("subscription.renew", OutcomeCompleted)),
			"a job that completes itself in its transaction (JobCompleteTx) is counted once")
		require.Equal(t, float64(1), b.value(t, "tessera_job_duration_seconds", map[string]string{"kind": "subscription.renew"}))
		require.Equal(t, float64(1), b.value(t, "tessera_renewals_total", map[string]string{"outcome": "started"}))
		require.Empty(t, b.log.String(), "nothing failed")

		// The buyer pays: the settle job pays the PayIn and the cycle.
		invoice, err := sql.New().PayInInvoiceGet(context.Background(), b.pool, sql.PayInInvoiceGetParams{TenantID: sub.TenantID, PayInID: b.payins(t)[0].ID})
		require.NoError(t, err)
		require.NoError(t, b.payments.Fake.Settle(invoice.ProviderInvoiceID, invoice.AmountSats))
		_, err = b.client.Insert(context.Background(), jobargs.PayInSettle{Provider: invoice.Provider, InvoiceID: invoice.ProviderInvoiceID}, nil)
		require.NoError(t, err)
		b.await(t, 1, "tessera_payins_total", map[string]string{"type": "subscription_renewal", "outcome": "paid", "reason": ""})
		require.Equal(t, float64(1), b.value(t, "tessera_renewals_total", map[string]string{"outcome": "paid"}))
	})

	t.Run("AFailedRenewalIsARenewalOutcomeNotAJobFailure", func(t *testing.T) {
		t.Parallel()
		b := setupObserved(t)
		b.rates.set(true)
		sub, _ := b.subscription(t, sql.CurrencyUSD, 2500)
		b.clock.Advance(30 * 24 * time.Hour)
		b.renew(t, sub, 0)

		b.await(t, 1, "tessera_renewals_total", map[string]string{"outcome": "failed"})
		require.Equal(t, float64(1), b.value(t, "tessera_jobs_total", jobsTotal("subscription.renew", OutcomeCompleted)))
	})

	t.Run("ARolledBackAttemptCountsNoOutcomeAndIsLogged", func(t *testing.T) {
		t.Parallel()
		b := setupObserved(t)
		b.rates.set(true)
		sub, _ := b.subscription(t, sql.CurrencyUSD, 2500)
		b.clock.Advance(30 * 24 * time.Hour)
		// The renewal records its failure, then its audit row is refused: the transaction
		// rolls back after the step noted the outcome.
		_, err := b.pool.Exec(context.Background(), `
			CREATE FUNCTION refuse_renewal_fail() RETURNS trigger LANGUAGE plpgsql AS
			$$ BEGIN RAISE EXCEPTION 'audit refused'; END $$;
			CREATE TRIGGER refuse_renewal_fail BEFORE INSERT ON audit_log
			FOR EACH ROW WHEN (NEW.action = 'subscription.renewal_fail') EXECUTE FUNCTION refuse_renewal_fail()`)
		require.NoError(t, err)
		id := b.renew(t, sub, 2)

		b.await(t, 1, "tessera_jobs_total", jobsTotal("subscription.renew", OutcomeDiscarded))
		require.Equal(t, float64(1), b.value(t, "tessera_jobs_total", jobsTotal("subscription.renew", OutcomeFailed)))
		require.Equal(t, float64(2), b.value(t, "tessera_job_duration_seconds", map[string]string{"kind": "subscription.renew"}))
		require.Zero(t, b.value(t, "tessera_renewals_total", map[string]string{"outcome": "failed"}), "rolled back: nothing happened")

		lines := strings.Split(strings.TrimSpace(b.log.String()), "\n")
		require.Len(t, lines, 2, b.log.String())
		for i, want := range []struct{ level, msg, attempt string }{
			{"WARN", "job failed; River retries it", "1"},
			{"ERROR", "job discarded after its last attempt", "2"},
		} {
			for _, field := range []string{
				"level=" + want.level, `msg="` + want.msg + `"`, "kind=subscription.renew", "job_id=" + strconv.FormatInt(id, 10),
				"attempt=" + want.attempt, "max_attempts=2", "tenant_id=" + sub.TenantID.String(), "duration=", "audit refused",
			} {
				require.Contains(t, lines[i], field)
			}
		}
	})

	t.Run("AJobOfNoTenantIsLoggedWithoutOne", func(t *testing.T) {
		t.Parallel()
		b := setupObserved(t)
		_, err := b.client.Insert(context.Background(), jobargs.PayInSettle{Provider: "btcpay", InvoiceID: uuid.NewString()}, &river.InsertOpts{MaxAttempts: 1})
		require.NoError(t, err)

		b.await(t, 1, "tessera_jobs_total", jobsTotal("payin.settle", OutcomeDiscarded))
		require.Contains(t, b.log.String(), "kind=payin.settle")
		require.NotContains(t, b.log.String(), "tenant_id=")
	})
}

// TestMetricsAttemptOutcome checks what the middleware makes of each way an attempt ends,
// as River's executor does: cancel and snooze errors, a remote cancel, the last attempt.
func TestMetricsAttemptOutcome(t *testing.T) {
	t.Parallel()
	remote, cancel := context.WithCancelCause(context.Background())
	cancel(rivertype.ErrJobCancelledRemotely)
	for _, tt := range []struct {
		name    string
		ctx     context.Context
		attempt int
		err     error
		want    string
	}{
		{name: "Completed", attempt: 1, want: OutcomeCompleted},
		{name: "FailedWithAttemptsLeft", attempt: 1, err: context.DeadlineExceeded, want: OutcomeFailed},
		{name: "FailedOnTheLastAttempt", attempt: 3, err: context.DeadlineExceeded, want: OutcomeDiscarded},
		{name: "CancelledByTheWorker", attempt: 1, err: river.JobCancel(context.Canceled), want: OutcomeCancelled},
		{name: "CancelledByAnOperatorWhileRunning", ctx: remote, attempt: 1, err: context.Canceled, want: OutcomeCancelled},
		{name: "Snoozed", attempt: 3, err: river.JobSnooze(time.Minute), want: OutcomeSnoozed},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := tt.ctx
			if ctx == nil {
				ctx = context.Background()
			}
			job := &rivertype.JobRow{Kind: "payin.settle", Attempt: tt.attempt, MaxAttempts: 3}
			require.Equal(t, tt.want, attemptOutcome(ctx, job, tt.err))
		})
	}
}
