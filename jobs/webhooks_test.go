package jobs

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertest"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/outbound"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// riverTime makes River's time (attempted_at, scheduled_at of retries) the test's clock.
type riverTime struct{ clock *clock.Manual }

func (r riverTime) Now() time.Time       { return r.clock.Now() }
func (r riverTime) NowOrNil() *time.Time { now := r.clock.Now(); return &now }

// received is one request a receiver got.
type received struct {
	id        string
	timestamp string
	body      []byte
	signature string
	// verified says whether the signature matched the receiver's secret at the time.
	verified bool
	// openTxs is how many of the worker's transactions were open while the request ran.
	openTxs int
}

// receiver is an httptest webhook endpoint that verifies signatures with the standard
// library's HMAC — not Tessera's signing code — and answers with status.
type receiver struct {
	srv      *httptest.Server
	probe    *deliverProbe
	mu       sync.Mutex
	secret   string
	status   int
	body     string
	requests []received
}

// newReceiver starts a receiver answering 204 until told otherwise; it watches the
// transactions of b's worker when b is given.
func newReceiver(t *testing.T, b *deliverBundle) *receiver {
	t.Helper()
	r := &receiver{status: http.StatusNoContent}
	if b != nil {
		r.probe = b.probe
	}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		got := received{
			id: req.Header.Get("webhook-id"), timestamp: req.Header.Get("webhook-timestamp"), body: body,
			signature: req.Header.Get("webhook-signature"),
		}
		if r.probe != nil {
			got.openTxs = r.probe.openTxs()
		}
		got.verified = req.Method == http.MethodPost && req.Header.Get("Content-Type") == "application/json" &&
			verifySignature(r.secret, got.id, got.timestamp, body, got.signature)
		r.requests = append(r.requests, got)
		w.WriteHeader(r.status)
		_, _ = io.WriteString(w, r.body)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// verifySignature checks a webhook-signature header (space-separated "v1,<base64>"
// signatures) against the HMAC-SHA256 of "id.timestamp.body" keyed with the secret's
// base64-decoded key, per Standard Webhooks.
func verifySignature(secret, id, timestamp string, body []byte, header string) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil || !strings.HasPrefix(secret, "whsec_") {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + timestamp + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, signature := range strings.Fields(header) {
		version, encoded, _ := strings.Cut(signature, ",")
		got, err := base64.StdEncoding.DecodeString(encoded)
		if version == "v1" && err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}

func (r *receiver) setSecret(secret string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secret = secret
}

func (r *receiver) answer(status int, body string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status, r.body = status, body
}

func (r *receiver) received() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.requests...)
}

// deliverBundle is what a delivery test needs: a worker running in the test's rolled-back
// transaction, a tenant, and an insert-only River client for core.Emit.
type deliverBundle struct {
	clock    *clock.Manual
	tx       pgx.Tx
	tenant   sql.Tenant
	inserter *river.Client[pgx.Tx]
	worker   *rivertest.Worker[jobargs.WebhookDeliver, pgx.Tx]
	probe    *deliverProbe
}

// setupDeliver returns a bundle whose worker gives each attempt timeout and may reach the
// loopback receivers, unless opts change its configuration.
func setupDeliver(t *testing.T, timeout time.Duration, opts ...func(*Config)) *deliverBundle {
	t.Helper()
	tx := testdb.Tx(t)
	b := &deliverBundle{clock: clock.NewManual(factory.Now), tx: tx, tenant: factory.Tenant(t, tx), probe: &deliverProbe{DB: tx}}
	worker := &WebhookDeliverWorker{cfg: Config{
		DB:             b.probe,
		Clock:          b.clock,
		Log:            slog.New(slog.DiscardHandler),
		Box:            factory.Box,
		HTTPClient:     outbound.Client(true),
		WebhookTimeout: timeout,
	}}
	for _, opt := range opts {
		opt(&worker.cfg)
	}
	riverConfig := &river.Config{Logger: slog.New(slog.DiscardHandler), Test: river.TestConfig{Time: riverTime{b.clock}}}
	b.worker = rivertest.NewWorker(t, riverpgxv5.New(nil), riverConfig, worker)
	inserter, err := river.NewClient(riverpgxv5.New(nil), riverConfig)
	require.NoError(t, err)
	b.inserter = inserter
	return b
}

// endpoint creates an endpoint at url subscribed to types and tells r (when given) its
// secret.
func (b *deliverBundle) endpoint(t *testing.T, r *receiver, url string, types ...string) sql.WebhookEndpoint {
	t.Helper()
	endpoint, secret, err := core.WebhookEndpointCreate(context.Background(), b.tx, factory.Box, b.clock.Now(), factory.Actor, b.tenant.ID, url, types)
	require.NoError(t, err)
	if r != nil {
		r.setSecret(secret)
	}
	return endpoint
}

// emit emits an event in its own savepoint and returns the deliveries it created, by
// endpoint id.
func (b *deliverBundle) emit(t *testing.T, eventType string, data any) map[uuid.UUID]sql.WebhookDelivery {
	t.Helper()
	ctx := context.Background()
	before := b.deliveries(t)
	require.NoError(t, pg.InTx(ctx, b.tx, func(tx pgx.Tx) error {
		return core.Emit(ctx, tx, b.inserter, b.clock.Now(), b.tenant.ID, core.Event{Type: eventType, Data: data})
	}))
	created := map[uuid.UUID]sql.WebhookDelivery{}
	for _, d := range b.deliveries(t) {
		if _, old := before[d.ID]; !old {
			created[d.EndpointID] = d
		}
	}
	return created
}

// deliveries returns the tenant's deliveries by id.
func (b *deliverBundle) deliveries(t *testing.T) map[uuid.UUID]sql.WebhookDelivery {
	t.Helper()
	rows, err := b.tx.Query(context.Background(), `SELECT * FROM webhook_deliveries WHERE tenant_id = $1`, b.tenant.ID)
	require.NoError(t, err)
	all, err := pgx.CollectRows(rows, pgx.RowToStructByPos[sql.WebhookDelivery])
	require.NoError(t, err)
	byID := map[uuid.UUID]sql.WebhookDelivery{}
	for _, d := range all {
		byID[d.ID] = d
	}
	return byID
}

// delivery reads one delivery.
func (b *deliverBundle) delivery(t *testing.T, id uuid.UUID) sql.WebhookDelivery {
	t.Helper()
	d, ok := b.deliveries(t)[id]
	require.True(t, ok, "delivery %s exists", id)
	return d
}

// job returns the webhook.deliver job of a delivery that core.Emit enqueued.
func (b *deliverBundle) job(t *testing.T, deliveryID uuid.UUID) *rivertype.JobRow {
	t.Helper()
	var id int64
	err := b.tx.QueryRow(context.Background(), `SELECT id FROM river_job WHERE kind = $1 AND args->>'delivery_id' = $2`,
		jobargs.WebhookDeliver{}.Kind(), deliveryID.String()).Scan(&id)
	require.NoError(t, err)
	job, err := b.inserter.JobGetTx(context.Background(), b.tx, id)
	require.NoError(t, err)
	return job
}

// work works a delivery's job once more, as River would on its next attempt.
func (b *deliverBundle) work(t *testing.T, deliveryID uuid.UUID) (*rivertest.WorkResult, error) {
	t.Helper()
	return b.worker.WorkJob(context.Background(), t, b.tx, b.job(t, deliveryID))
}

// auditActions returns the actions of the tenant's audit log about webhook deliveries,
// oldest first.
func (b *deliverBundle) auditActions(t *testing.T) []string {
	t.Helper()
	rows, err := b.tx.Query(context.Background(), `SELECT action FROM audit_log WHERE tenant_id = $1 AND subject_type = 'webhook_delivery' ORDER BY id`, b.tenant.ID)
	require.NoError(t, err)
	actions, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	return actions
}

type payload struct {
	Type      string         `json:"type"`
	Timestamp time.Time      `json:"timestamp"`
	Data      map[string]any `json:"data"`
}

func TestWebhookDeliverConfig(t *testing.T) {
	t.Parallel()

	valid := Config{DB: testdb.Tx(t), Clock: clock.NewManual(factory.Now), Log: slog.New(slog.DiscardHandler), Box: factory.Box, Payments: factory.FakeBTCPay(t, "").Client, Rates: factory.Rates(t)}

	t.Run("NegativeTimeout", func(t *testing.T) {
		t.Parallel()
		cfg := valid
		cfg.WebhookTimeout = -time.Second
		workers, err := Workers(cfg)
		require.EqualError(t, err, "jobs: Config.WebhookTimeout must be positive")
		require.Nil(t, workers)
	})

	t.Run("TimeoutBoundsTheJob", func(t *testing.T) {
		t.Parallel()
		worker := &WebhookDeliverWorker{cfg: Config{WebhookTimeout: 10 * time.Second, JobTimeout: 30 * time.Second}}
		require.Equal(t, 40*time.Second, worker.Timeout(nil), "the attempt's timeout and time to record it")
	})
}

func TestWebhookRetrySchedule(t *testing.T) {
	t.Parallel()

	attempted := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	worker := &WebhookDeliverWorker{cfg: Config{Clock: clock.NewManual(factory.Now)}}
	for _, tt := range []struct {
		attempt int
		wait    time.Duration
	}{
		{attempt: 1, wait: 30 * time.Second},
		{attempt: 2, wait: 2 * time.Minute},
		{attempt: 3, wait: 10 * time.Minute},
		{attempt: 4, wait: 30 * time.Minute},
		{attempt: 5, wait: time.Hour},
		{attempt: 6, wait: 2 * time.Hour},
		{attempt: 7, wait: 4 * time.Hour},
		{attempt: 8, wait: 8 * time.Hour},
		{attempt: 9, wait: 12 * time.Hour},
		{attempt: 10, wait: 12 * time.Hour},
		{attempt: 11, wait: 16 * time.Hour},
		{attempt: 12, wait: 16 * time.Hour},
		{attempt: 13, wait: 16 * time.Hour}, // past the schedule (a job given more attempts): the last wait
	} {
		t.Run("Attempt"+strconv.Itoa(tt.attempt), func(t *testing.T) {
			t.Parallel()
			job := &river.Job[jobargs.WebhookDeliver]{JobRow: &rivertype.JobRow{Attempt: tt.attempt, AttemptedAt: &attempted}}
			require.Equal(t, attempted.Add(tt.wait), worker.NextRetry(job))
		})
	}

	t.Run("WithoutAttemptedAtUsesTheClock", func(t *testing.T) {
		t.Parallel()
		job := &river.Job[jobargs.WebhookDeliver]{JobRow: &rivertype.JobRow{Attempt: 1}}
		require.Equal(t, factory.Now.Add(30*time.Second), worker.NextRetry(job))
	})

	t.Run("AboutThreeDaysOverMaxAttempts", func(t *testing.T) {
		t.Parallel()
		require.Len(t, WebhookRetrySchedule, jobargs.WebhookDeliverMaxAttempts-1, "one wait between each two attempts")
		var total time.Duration
		for i, wait := range WebhookRetrySchedule {
			total += wait
			if i > 0 {
				require.GreaterOrEqual(t, wait, WebhookRetrySchedule[i-1], "waits never shrink")
			}
		}
		require.Equal(t, 71*time.Hour+42*time.Minute+30*time.Second, total)
	})

	t.Run("RiverMaxAttempts", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, river.InsertOpts{Queue: jobargs.QueueWebhooks, MaxAttempts: 13}, jobargs.WebhookDeliver{}.InsertOpts())
	})
}

func TestWebhookDeliverWorker(t *testing.T) {
	t.Parallel()

	t.Run("SignedDeliverySucceeds", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, 10*time.Second)
		r := newReceiver(t, b)
		endpoint := b.endpoint(t, r, r.srv.URL+"/hooks", core.EventLicenseIssued)
		b.clock.Advance(time.Minute) // the event happens after the endpoint was created
		delivery := b.emit(t, core.EventLicenseIssued, map[string]string{"license_id": "lic-1"})[endpoint.ID]
		b.clock.Advance(5 * time.Second) // and is sent a little later

		res, err := b.work(t, delivery.ID)

		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		got := r.received()
		require.Len(t, got, 1)
		require.True(t, got[0].verified, "the signature verifies with the endpoint's secret")
		require.Equal(t, delivery.EventID.String(), got[0].id, "webhook-id is the event id")
		require.Equal(t, strconv.FormatInt(b.clock.Now().Unix(), 10), got[0].timestamp, "webhook-timestamp is the clock's")
		var body payload
		require.NoError(t, json.Unmarshal(got[0].body, &body))
		require.Equal(t, payload{Type: "license.issued", Timestamp: factory.Now.Add(time.Minute), Data: map[string]any{"license_id": "lic-1"}}, body)

		d := b.delivery(t, delivery.ID)
		require.Equal(t, sql.DeliveryStateSucceeded, d.State)
		require.Equal(t, int32(1), d.Attempts)
		require.Equal(t, new(int32(http.StatusNoContent)), d.LastStatus)
		require.Nil(t, d.LastError)
		requireTime(t, b.clock.Now(), d.LastAttemptAt)
		requireTime(t, b.clock.Now(), d.FinishedAt)
		require.Equal(t, []string{"webhook_delivery.succeed"}, b.auditActions(t))

		require.Zero(t, got[0].openTxs, "no transaction is open while the request runs")
		require.Equal(t, deliverCommit{Job: rivertype.JobStateCompleted, Delivery: sql.DeliveryStateSucceeded}, b.probe.lastCommit(t, res.Job.ID, delivery.ID),
			"the job completes in the transaction that records the success")
	})

	t.Run("PrivateAddressRefused", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, 10*time.Second, func(c *Config) { c.HTTPClient = outbound.Client(false) })
		r := newReceiver(t, b)
		endpoint := b.endpoint(t, r, r.srv.URL, core.EventLicenseRevoked)
		delivery := b.emit(t, core.EventLicenseRevoked, map[string]string{"license_id": "lic-3"})[endpoint.ID]

		res, err := b.work(t, delivery.ID)
		require.ErrorIs(t, err, outbound.ErrForbiddenAddress)
		require.Equal(t, rivertype.JobStateRetryable, res.Job.State)
		d := b.delivery(t, delivery.ID)
		require.Contains(t, *d.LastError, "not public", "the tenant sees why")
		require.Nil(t, d.LastStatus)
		require.Empty(t, r.received(), "nothing reached the loopback receiver")
	})

	t.Run("FailingEndpointRetriesOnScheduleThenDies", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, 10*time.Second)
		r := newReceiver(t, b)
		r.answer(http.StatusServiceUnavailable, "down for maintenance")
		endpoint := b.endpoint(t, r, r.srv.URL, core.EventLicenseRevoked)
		delivery := b.emit(t, core.EventLicenseRevoked, map[string]string{"license_id": "lic-2"})[endpoint.ID]

		for attempt := 1; attempt <= jobargs.WebhookDeliverMaxAttempts; attempt++ {
			attemptedAt := b.clock.Now()
			res, err := b.work(t, delivery.ID)
			require.ErrorContains(t, err, "HTTP 503: down for maintenance")
			require.Equal(t, attempt, res.Job.Attempt)

			d := b.delivery(t, delivery.ID)
			require.Equal(t, int32(attempt), d.Attempts)
			require.Equal(t, new(int32(http.StatusServiceUnavailable)), d.LastStatus)
			require.Equal(t, new("HTTP 503: down for maintenance"), d.LastError)
			requireTime(t, attemptedAt, d.LastAttemptAt)
			if attempt < jobargs.WebhookDeliverMaxAttempts {
				require.Equal(t, sql.DeliveryStatePending, d.State)
				require.Nil(t, d.FinishedAt)
				require.Equal(t, rivertype.JobStateRetryable, res.Job.State)
				require.Equal(t, attemptedAt.Add(WebhookRetrySchedule[attempt-1]), res.Job.ScheduledAt.UTC(), "attempt %d", attempt)
				b.clock.Advance(res.Job.ScheduledAt.Sub(attemptedAt))
				continue
			}
			require.Equal(t, sql.DeliveryStateDead, d.State, "dead after the last attempt")
			requireTime(t, attemptedAt, d.FinishedAt)
			require.Equal(t, rivertype.JobStateDiscarded, res.Job.State)
		}

		got := r.received()
		require.Len(t, got, jobargs.WebhookDeliverMaxAttempts)
		timestamps := map[string]bool{}
		for _, req := range got {
			require.True(t, req.verified)
			require.Equal(t, delivery.EventID.String(), req.id, "the same webhook-id on every attempt")
			timestamps[req.timestamp] = true
		}
		require.Len(t, timestamps, jobargs.WebhookDeliverMaxAttempts, "each attempt is signed at its own time")
		require.Equal(t, factory.Now.Add(71*time.Hour+42*time.Minute+30*time.Second), b.clock.Now(), "the last attempt came about three days later")
		require.Equal(t, []string{"webhook_delivery.die"}, b.auditActions(t))
	})

	t.Run("RecoversAfterFailures", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, 10*time.Second)
		r := newReceiver(t, b)
		r.answer(http.StatusInternalServerError, "")
		endpoint := b.endpoint(t, r, r.srv.URL, core.EventMachineActivated)
		delivery := b.emit(t, core.EventMachineActivated, map[string]string{})[endpoint.ID]

		_, err := b.work(t, delivery.ID)
		require.EqualError(t, err, "deliver webhook "+delivery.ID.String()+" (attempt 1 of 13): HTTP 500")
		r.answer(http.StatusOK, "thanks")
		b.clock.Advance(30 * time.Second)
		res, err := b.work(t, delivery.ID)

		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		d := b.delivery(t, delivery.ID)
		require.Equal(t, sql.DeliveryStateSucceeded, d.State)
		require.Equal(t, int32(2), d.Attempts)
		require.Equal(t, new(int32(http.StatusOK)), d.LastStatus)
		require.Nil(t, d.LastError, "a success clears the last error")
	})

	t.Run("NetworkErrorRecordsNoStatus", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, 10*time.Second)
		closed := httptest.NewServer(http.NotFoundHandler())
		closed.Close()
		endpoint := b.endpoint(t, nil, closed.URL, core.EventLicenseIssued)
		delivery := b.emit(t, core.EventLicenseIssued, nil)[endpoint.ID]

		res, err := b.work(t, delivery.ID)

		require.ErrorContains(t, err, "connection refused")
		require.Equal(t, rivertype.JobStateRetryable, res.Job.State)
		d := b.delivery(t, delivery.ID)
		require.Equal(t, int32(1), d.Attempts)
		require.Nil(t, d.LastStatus)
		require.NotNil(t, d.LastError)
		require.Contains(t, *d.LastError, "connection refused")
	})

	t.Run("RedirectIsAFailure", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, 10*time.Second)
		r := newReceiver(t, b)
		redirect := httptest.NewServer(http.RedirectHandler(r.srv.URL, http.StatusFound))
		t.Cleanup(redirect.Close)
		endpoint := b.endpoint(t, r, redirect.URL, core.EventLicenseIssued)
		delivery := b.emit(t, core.EventLicenseIssued, nil)[endpoint.ID]

		_, err := b.work(t, delivery.ID)

		require.ErrorContains(t, err, "HTTP 302")
		require.Empty(t, r.received(), "the redirect is not followed")
		require.Equal(t, new(int32(http.StatusFound)), b.delivery(t, delivery.ID).LastStatus)
	})

	t.Run("SlowEndpointTimesOutPerAttempt", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, 100*time.Millisecond)
		release := make(chan struct{})
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(slow.Close)
		t.Cleanup(func() { close(release) }) // runs first: the handler returns before Close waits for it
		endpoint := b.endpoint(t, nil, slow.URL, core.EventLicenseIssued)
		delivery := b.emit(t, core.EventLicenseIssued, nil)[endpoint.ID]

		res, err := b.work(t, delivery.ID)

		require.ErrorContains(t, err, "no response within 100ms")
		require.Equal(t, rivertype.JobStateRetryable, res.Job.State)
		d := b.delivery(t, delivery.ID)
		require.Equal(t, sql.DeliveryStatePending, d.State)
		require.Equal(t, int32(1), d.Attempts)
		require.Nil(t, d.LastStatus)
		require.Equal(t, new("no response within 100ms"), d.LastError)
	})

	t.Run("FinishedDeliveryIsNotSentAgain", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, 10*time.Second)
		r := newReceiver(t, b)
		endpoint := b.endpoint(t, r, r.srv.URL, core.EventLicenseIssued)
		delivery := b.emit(t, core.EventLicenseIssued, nil)[endpoint.ID]
		_, err := b.work(t, delivery.ID)
		require.NoError(t, err)

		// A duplicate job for the same delivery (say, a rescued one) completes and sends nothing.
		res, err := b.worker.Work(context.Background(), t, b.tx, jobargs.WebhookDeliver{TenantID: b.tenant.ID, DeliveryID: delivery.ID}, nil)

		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		require.Len(t, r.received(), 1)
		require.Equal(t, int32(1), b.delivery(t, delivery.ID).Attempts)
	})

	t.Run("DeletedEndpointCompletesWithoutSending", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, 10*time.Second)
		r := newReceiver(t, b)
		endpoint := b.endpoint(t, r, r.srv.URL, core.EventLicenseIssued)
		delivery := b.emit(t, core.EventLicenseIssued, nil)[endpoint.ID]
		job := b.job(t, delivery.ID)
		_, err := core.WebhookEndpointDelete(context.Background(), b.tx, b.clock.Now(), factory.Actor, b.tenant.ID, endpoint.ID)
		require.NoError(t, err)

		res, err := b.worker.WorkJob(context.Background(), t, b.tx, job)

		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		require.Empty(t, r.received())
		require.Empty(t, b.deliveries(t))
	})

	t.Run("DisabledEndpointDiesWithoutSending", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, 10*time.Second)
		r := newReceiver(t, b)
		endpoint := b.endpoint(t, r, r.srv.URL, core.EventLicenseIssued)
		delivery := b.emit(t, core.EventLicenseIssued, nil)[endpoint.ID]
		_, err := core.WebhookEndpointUpdate(context.Background(), b.tx, b.clock.Now(), factory.Actor, b.tenant.ID, endpoint.ID,
			core.WebhookEndpointChange{Enabled: new(false)})
		require.NoError(t, err)

		res, err := b.work(t, delivery.ID)

		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		require.Empty(t, r.received())
		d := b.delivery(t, delivery.ID)
		require.Equal(t, sql.DeliveryStateDead, d.State)
		require.Equal(t, int32(0), d.Attempts)
		require.Equal(t, new("the endpoint is disabled; not attempted"), d.LastError)
		requireTime(t, b.clock.Now(), d.FinishedAt)
		require.Equal(t, []string{"webhook_delivery.die"}, b.auditActions(t))
	})

	t.Run("RotatedSecretSignsRetries", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, 10*time.Second)
		r := newReceiver(t, b)
		r.answer(http.StatusBadGateway, "")
		endpoint := b.endpoint(t, r, r.srv.URL, core.EventLicenseIssued)
		oldSecret := r.secret
		delivery := b.emit(t, core.EventLicenseIssued, nil)[endpoint.ID]
		_, err := b.work(t, delivery.ID)
		require.Error(t, err)

		_, newSecret, err := core.WebhookEndpointRotateSecret(context.Background(), b.tx, factory.Box, b.clock.Now(), factory.Actor, b.tenant.ID, endpoint.ID)
		require.NoError(t, err)
		require.NotEqual(t, oldSecret, newSecret)
		r.setSecret(newSecret)
		r.answer(http.StatusOK, "")
		b.clock.Advance(30 * time.Second)
		_, err = b.work(t, delivery.ID)
		require.NoError(t, err)

		got := r.received()
		require.Len(t, got, 2)
		require.True(t, got[0].verified, "the first attempt was signed with the old secret")
		require.True(t, got[1].verified, "the retry is signed with the new secret")
		require.False(t, verifySignature(oldSecret, got[1].id, got[1].timestamp, got[1].body, got[1].signature),
			"the old secret no longer verifies")
	})

	t.Run("EmitCreatesOneDeliveryPerSubscribedEnabledEndpoint", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, 10*time.Second)
		subscribed := b.endpoint(t, nil, "https://a.example/hooks", core.EventLicenseIssued, core.EventLicenseRevoked)
		alsoSubscribed := b.endpoint(t, nil, "https://b.example/hooks", core.EventLicenseIssued)
		disabled := b.endpoint(t, nil, "https://c.example/hooks", core.EventLicenseIssued)
		_, err := core.WebhookEndpointUpdate(context.Background(), b.tx, b.clock.Now(), factory.Actor, b.tenant.ID, disabled.ID,
			core.WebhookEndpointChange{Enabled: new(false)})
		require.NoError(t, err)
		b.endpoint(t, nil, "https://d.example/hooks", core.EventLicenseRevoked) // not subscribed
		other := factory.Tenant(t, b.tx)
		_, _, err = core.WebhookEndpointCreate(context.Background(), b.tx, factory.Box, b.clock.Now(), factory.Actor, other.ID,
			"https://other.example/hooks", []string{core.EventLicenseIssued})
		require.NoError(t, err)

		created := b.emit(t, core.EventLicenseIssued, map[string]string{"license_id": "lic-3"})

		require.Len(t, created, 2)
		require.Contains(t, created, subscribed.ID)
		require.Contains(t, created, alsoSubscribed.ID)
		require.Equal(t, created[subscribed.ID].EventID, created[alsoSubscribed.ID].EventID, "one event, two deliveries")
		for _, d := range created {
			require.Equal(t, sql.DeliveryStatePending, d.State)
			require.Equal(t, int32(0), d.Attempts)
			job := b.job(t, d.ID)
			require.Equal(t, jobargs.QueueWebhooks, job.Queue)
			require.Equal(t, jobargs.WebhookDeliverMaxAttempts, job.MaxAttempts)
			require.Equal(t, rivertype.JobStateAvailable, job.State)
		}
		require.Empty(t, b.emit(t, core.EventMachineActivated, nil), "no endpoint subscribes to it")
	})

	t.Run("EmitRefusesUnknownType", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, 10*time.Second)
		err := pg.InTx(context.Background(), b.tx, func(tx pgx.Tx) error {
			return core.Emit(context.Background(), tx, b.inserter, b.clock.Now(), b.tenant.ID, core.Event{Type: "license.exploded"})
		})
		require.EqualError(t, err, `emit event: unknown event type "license.exploded": add it to core.EventTypes`)
	})
}

// TestWebhookDeliverySlowEndpointDoesNotDelayOthers runs a real River client on its own
// database: one event goes to a slow endpoint (its handler blocks until the test ends) and a
// fast one. The deliveries are separate jobs, so the fast one succeeds while the slow one is
// still waiting for its answer.
func TestWebhookDeliverySlowEndpointDoesNotDelayOthers(t *testing.T) {
	t.Parallel()

	ctx := context.Background()
	pool, _ := testdb.Clone(t)
	clk := clock.NewManual(factory.Now)
	tenant := factory.Tenant(t, pool)
	log := slog.New(slog.DiscardHandler)

	fast := newReceiver(t, nil)
	slowEntered := make(chan struct{}, 1)
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		slowEntered <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(slow.Close)

	var slowEndpoint, fastEndpoint sql.WebhookEndpoint
	require.NoError(t, pg.InTx(ctx, pool, func(tx pgx.Tx) error {
		var err error
		if slowEndpoint, _, err = core.WebhookEndpointCreate(ctx, tx, factory.Box, clk.Now(), factory.Actor, tenant.ID, slow.URL, []string{core.EventLicenseIssued}); err != nil {
			return err
		}
		var secret string
		if fastEndpoint, secret, err = core.WebhookEndpointCreate(ctx, tx, factory.Box, clk.Now(), factory.Actor, tenant.ID, fast.srv.URL, []string{core.EventLicenseIssued}); err != nil {
			return err
		}
		fast.setSecret(secret)
		return nil
	}))

	workers, err := Workers(Config{DB: pool, Clock: clk, Log: log, Box: factory.Box, Payments: factory.FakeBTCPay(t, "").Client, Rates: factory.Rates(t), WebhookTimeout: time.Minute, AllowPrivateNetworks: true})
	require.NoError(t, err)
	client, err := river.NewClient(riverpgxv5.New(pool), &river.Config{
		Logger:   log,
		Queues:   map[string]river.QueueConfig{jobargs.QueueWebhooks: {MaxWorkers: 2}},
		Workers:  workers,
		TestOnly: true,
	})
	require.NoError(t, err)
	completed, cancel := client.Subscribe(river.EventKindJobCompleted)
	t.Cleanup(cancel)
	require.NoError(t, pg.InTx(ctx, pool, func(tx pgx.Tx) error {
		return core.Emit(ctx, tx, client, clk.Now(), tenant.ID, core.Event{Type: core.EventLicenseIssued, Data: map[string]string{"license_id": "lic-9"}})
	}))
	require.NoError(t, client.Start(ctx))
	t.Cleanup(func() { require.NoError(t, client.StopAndCancel(context.WithoutCancel(ctx))) })
	t.Cleanup(func() { close(release) }) // runs first: the slow handler returns, then River stops

	select {
	case <-slowEntered:
	case <-time.After(30 * time.Second):
		require.FailNow(t, "the slow endpoint got no request")
	}
	select {
	case event := <-completed:
		require.Equal(t, jobargs.WebhookDeliver{}.Kind(), event.Job.Kind)
	case <-time.After(30 * time.Second):
		require.FailNow(t, "the fast endpoint's delivery did not complete")
	}

	rows, err := pool.Query(ctx, `SELECT endpoint_id, state::text, attempts FROM webhook_deliveries WHERE tenant_id = $1`, tenant.ID)
	require.NoError(t, err)
	type outcome struct {
		State    string
		Attempts int32
	}
	byEndpoint := map[uuid.UUID]outcome{}
	var (
		endpointID uuid.UUID
		o          outcome
	)
	_, err = pgx.ForEachRow(rows, []any{&endpointID, &o.State, &o.Attempts}, func() error { byEndpoint[endpointID] = o; return nil })
	require.NoError(t, err)
	require.Equal(t, map[uuid.UUID]outcome{
		fastEndpoint.ID: {State: "succeeded", Attempts: 1},
		slowEndpoint.ID: {State: "pending", Attempts: 0},
	}, byEndpoint, "the fast endpoint has its event while the slow one is still waiting")
	got := fast.received()
	require.Len(t, got, 1)
	require.True(t, got[0].verified)
}

// deliverProbe is the worker's DB: it begins the worker's transactions on the test's
// transaction, counts those open, and records what each held when it committed.
type deliverProbe struct {
	pg.DB
	mu      sync.Mutex
	open    int
	commits []deliverSnapshot
}

// deliverSnapshot is the state of every webhook job and delivery that one of the worker's
// transactions saw just before committing.
type deliverSnapshot struct {
	jobs       map[int64]rivertype.JobState
	deliveries map[uuid.UUID]sql.DeliveryState
}

// deliverCommit is a job's and a delivery's state in a deliverSnapshot.
type deliverCommit struct {
	Job      rivertype.JobState
	Delivery sql.DeliveryState
}

// Begin begins a probed transaction.
func (p *deliverProbe) Begin(ctx context.Context) (pgx.Tx, error) {
	tx, err := p.DB.Begin(ctx)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.open++
	return &deliverTx{Tx: tx, probe: p}, nil
}

func (p *deliverProbe) openTxs() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.open
}

// lastCommit returns the job's and the delivery's state in the worker's last committed
// transaction.
func (p *deliverProbe) lastCommit(t *testing.T, jobID int64, deliveryID uuid.UUID) deliverCommit {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	require.NotEmpty(t, p.commits, "the worker committed no transaction")
	last := p.commits[len(p.commits)-1]
	return deliverCommit{Job: last.jobs[jobID], Delivery: last.deliveries[deliveryID]}
}

// deliverTx is a worker's transaction watched by a deliverProbe.
type deliverTx struct {
	pgx.Tx
	probe  *deliverProbe
	closed bool
}

// Commit snapshots every webhook job and delivery visible in the transaction, then commits.
func (tx *deliverTx) Commit(ctx context.Context) error {
	snapshot := deliverSnapshot{jobs: map[int64]rivertype.JobState{}, deliveries: map[uuid.UUID]sql.DeliveryState{}}
	var (
		jobID      int64
		deliveryID uuid.UUID
		state      string
	)
	rows, _ := tx.Query(ctx, `SELECT id, state::text FROM river_job WHERE kind = $1`, jobargs.WebhookDeliver{}.Kind())
	if _, err := pgx.ForEachRow(rows, []any{&jobID, &state}, func() error {
		snapshot.jobs[jobID] = rivertype.JobState(state)
		return nil
	}); err != nil {
		return err
	}
	rows, _ = tx.Query(ctx, `SELECT id, state::text FROM webhook_deliveries`)
	if _, err := pgx.ForEachRow(rows, []any{&deliveryID, &state}, func() error {
		snapshot.deliveries[deliveryID] = sql.DeliveryState(state)
		return nil
	}); err != nil {
		return err
	}
	tx.probe.mu.Lock()
	tx.probe.commits = append(tx.probe.commits, snapshot)
	tx.probe.mu.Unlock()
	return tx.close(ctx, tx.Tx.Commit)
}

// Rollback rolls back and counts the transaction closed.
func (tx *deliverTx) Rollback(ctx context.Context) error {
	return tx.close(ctx, tx.Tx.Rollback)
}

func (tx *deliverTx) close(ctx context.Context, end func(context.Context) error) error {
	if !tx.closed {
		tx.closed = true
		tx.probe.mu.Lock()
		tx.probe.open--
		tx.probe.mu.Unlock()
	}
	return end(ctx)
}

// requireTime asserts that got is the instant want (whatever its location).
func requireTime(t *testing.T, want time.Time, got *time.Time) {
	t.Helper()
	require.NotNil(t, got)
	require.True(t, want.Equal(*got), "want %s, got %s", want, *got)
}

// TestEventRetentionSweepWorker keeps the outbox bounded: events older than the retention
// go with their finished deliveries; recent ones, and old ones still being delivered, stay.
func TestEventRetentionSweepWorker(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupDeliver(t, 10*time.Second)
	endpoint := b.endpoint(t, nil, "https://example.com/hook", core.EventLicenseRevoked)
	setState := func(d sql.WebhookDelivery, state sql.DeliveryState) {
		_, err := b.tx.Exec(ctx, "UPDATE webhook_deliveries SET state = $3::delivery_state, finished_at = CASE WHEN $3::delivery_state <> 'pending' THEN now() END WHERE tenant_id = $1 AND id = $2",
			b.tenant.ID, d.ID, state)
		require.NoError(t, err)
	}
	succeeded := b.emit(t, core.EventLicenseRevoked, map[string]string{"n": "succeeded"})[endpoint.ID]
	setState(succeeded, sql.DeliveryStateSucceeded)
	dead := b.emit(t, core.EventLicenseRevoked, map[string]string{"n": "dead"})[endpoint.ID]
	setState(dead, sql.DeliveryStateDead)
	pending := b.emit(t, core.EventLicenseRevoked, map[string]string{"n": "pending"})[endpoint.ID]
	require.Empty(t, b.emit(t, core.EventLicenseIssued, map[string]string{"n": "undelivered"}), "no endpoint wants it")
	b.clock.Advance(31 * 24 * time.Hour)
	recent := b.emit(t, core.EventLicenseRevoked, map[string]string{"n": "recent"})[endpoint.ID]
	setState(recent, sql.DeliveryStateSucceeded)

	worker := rivertest.NewWorker(t, riverpgxv5.New(nil), &river.Config{}, &EventRetentionSweepWorker{cfg: Config{
		DB: b.tx, Clock: b.clock, Log: slog.New(slog.DiscardHandler), EventRetention: 30 * 24 * time.Hour,
	}})
	res, err := worker.Work(ctx, t, b.tx, jobargs.EventRetentionSweep{}, nil)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, res.Job.State)

	left := b.deliveries(t)
	require.Len(t, left, 2)
	require.Contains(t, left, pending.ID, "an old event still being delivered stays")
	require.Contains(t, left, recent.ID)
	var events []string
	rows, err := b.tx.Query(ctx, "SELECT data->>'n' FROM events WHERE tenant_id = $1 ORDER BY occurred_at, id", b.tenant.ID)
	require.NoError(t, err)
	events, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Equal(t, []string{"pending", "recent"}, events)

	_, err = worker.Work(ctx, t, b.tx, jobargs.EventRetentionSweep{}, nil)
	require.NoError(t, err, "a second sweep finds nothing more to delete")
	require.Len(t, b.deliveries(t), 2)
}
