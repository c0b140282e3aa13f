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
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
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
	// onRequest, when set, runs at the start of each request, while the worker waits for
	// the answer.
	onRequest func()
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
		if r.onRequest != nil {
			r.onRequest()
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
	sweeper  *rivertest.Worker[jobargs.WebhookDeliverSweep, pgx.Tx]
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
		WebhookBatch:   defaultWebhookBatch,
	}}
	for _, opt := range opts {
		opt(&worker.cfg)
	}
	riverConfig := &river.Config{Logger: slog.New(slog.DiscardHandler), Test: river.TestConfig{Time: riverTime{b.clock}}}
	b.worker = rivertest.NewWorker(t, riverpgxv5.New(nil), riverConfig, worker)
	b.sweeper = rivertest.NewWorker(t, riverpgxv5.New(nil), riverConfig, &WebhookDeliverSweepWorker{cfg: worker.cfg})
	inserter, err := river.NewClient(riverpgxv5.New(nil), riverConfig)
	require.NoError(t, err)
	b.inserter = inserter
	return b
}

// endpoint creates an endpoint at url subscribed to types and tells r (when given) its
// secret.
func (b *deliverBundle) endpoint(t *testing.T, r *receiver, url string, types ...string) sql.WebhookEndpoint {
	t.Helper()
	endpoint, secret, err := core.WebhookEndpointCreate(context.Background(), b.tx, b.step(), core.WebhookEndpointCreateParams{
		TenantID: b.tenant.ID, MaxEndpoints: core.WebhookMaxEndpointsDefault, URL: url, EventTypes: types,
	})
	require.NoError(t, err)
	if r != nil {
		r.setSecret(secret)
	}
	return endpoint
}

// step is what the test's own core steps need: the bundle's time and inserter.
func (b *deliverBundle) step() core.Step {
	return core.Step{Now: b.clock.Now(), Actor: factory.Actor, Box: factory.Box, Jobs: b.inserter}
}

// emit emits an event in its own savepoint and returns the deliveries it created, by
// endpoint id.
func (b *deliverBundle) emit(t *testing.T, data core.EventData) map[uuid.UUID]sql.WebhookDelivery {
	t.Helper()
	ctx := context.Background()
	before := b.deliveries(t)
	require.NoError(t, pg.InTx(ctx, b.tx, func(tx pgx.Tx) error {
		return core.Emit(ctx, tx, core.Step{Jobs: b.inserter, Now: b.clock.Now()}, core.Event{TenantID: b.tenant.ID, Data: data})
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

// liveJobs returns the endpoint's webhook.deliver jobs that are not finished, oldest first.
func (b *deliverBundle) liveJobs(t *testing.T, endpointID uuid.UUID) []*rivertype.JobRow {
	t.Helper()
	rows, err := b.tx.Query(context.Background(), `SELECT id FROM river_job WHERE kind = $1 AND args->>'endpoint_id' = $2
		AND state NOT IN ('completed', 'cancelled', 'discarded') ORDER BY id`, jobargs.WebhookDeliver{}.Kind(), endpointID.String())
	require.NoError(t, err)
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	require.NoError(t, err)
	jobs := make([]*rivertype.JobRow, len(ids))
	for i, id := range ids {
		jobs[i], err = b.inserter.JobGetTx(context.Background(), b.tx, id)
		require.NoError(t, err)
	}
	return jobs
}

// job returns the endpoint's one live webhook.deliver job.
func (b *deliverBundle) job(t *testing.T, endpointID uuid.UUID) *rivertype.JobRow {
	t.Helper()
	jobs := b.liveJobs(t, endpointID)
	require.Len(t, jobs, 1, "one live webhook.deliver job for endpoint %s", endpointID)
	return jobs[0]
}

// work works the endpoint's live job, as River would.
func (b *deliverBundle) work(t *testing.T, endpointID uuid.UUID) (*rivertest.WorkResult, error) {
	t.Helper()
	return b.worker.WorkJob(context.Background(), t, b.tx, b.job(t, endpointID))
}

// sweep runs the webhook.deliver_sweep once.
func (b *deliverBundle) sweep(t *testing.T) {
	t.Helper()
	res, err := b.sweeper.Work(context.Background(), t, b.tx, jobargs.WebhookDeliverSweep{}, nil)
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
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
		require.Equal(t, 50*time.Second, worker.Timeout(nil), "attempts start within the timeout, each takes at most the timeout, then it is recorded")
	})

	t.Run("FailedJobRunsAgainSoon", func(t *testing.T) {
		t.Parallel()
		worker := &WebhookDeliverWorker{cfg: Config{Clock: clock.NewManual(factory.Now)}}
		require.Equal(t, factory.Now.Add(5*time.Second), worker.NextRetry(nil))
	})

	t.Run("UniquePerEndpointAmongLiveJobs", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, river.InsertOpts{
			Queue: jobargs.QueueWebhooks, MaxAttempts: jobargs.WebhookDeliverMaxAttempts,
			UniqueOpts: river.UniqueOpts{ByArgs: true, ByState: []rivertype.JobState{
				rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
				rivertype.JobStateRunning, rivertype.JobStateScheduled,
			}},
		}, jobargs.WebhookDeliver{}.InsertOpts())
	})
}

func TestWebhookRetrySchedule(t *testing.T) {
	t.Parallel()

	attempted := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
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
		{attempt: 13, wait: 16 * time.Hour}, // past the schedule: the last wait
	} {
		t.Run("Attempt"+strconv.Itoa(tt.attempt), func(t *testing.T) {
			t.Parallel()
			require.Equal(t, attempted.Add(tt.wait), WebhookRetryAt(attempted, tt.attempt))
		})
	}

	t.Run("AboutThreeDaysOverMaxAttempts", func(t *testing.T) {
		t.Parallel()
		require.Len(t, WebhookRetrySchedule, WebhookDeliveryMaxAttempts-1, "one wait between each two attempts")
		var total time.Duration
		for i, wait := range WebhookRetrySchedule {
			total += wait
			if i > 0 {
				require.GreaterOrEqual(t, wait, WebhookRetrySchedule[i-1], "waits never shrink")
			}
		}
		require.Equal(t, 71*time.Hour+42*time.Minute+30*time.Second, total)
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
		data := core.LicenseIssuedEvent{LicenseID: uuid.Must(uuid.NewV7()), Status: sql.LicenseStatusActive}
		delivery := b.emit(t, data)[endpoint.ID]
		b.clock.Advance(5 * time.Second) // and is sent a little later

		res, err := b.work(t, endpoint.ID)

		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		got := r.received()
		require.Len(t, got, 1)
		require.True(t, got[0].verified, "the signature verifies with the endpoint's secret")
		require.Equal(t, delivery.EventID.String(), got[0].id, "webhook-id is the event id")
		require.Equal(t, strconv.FormatInt(b.clock.Now().Unix(), 10), got[0].timestamp, "webhook-timestamp is the clock's")
		var body payload
		require.NoError(t, json.Unmarshal(got[0].body, &body))
		encoded, err := json.Marshal(data)
		require.NoError(t, err)
		var want map[string]any
		require.NoError(t, json.Unmarshal(encoded, &want))
		require.Equal(t, payload{Type: "license.issued", Timestamp: factory.Now.Add(time.Minute), Data: want}, body)

		d := b.delivery(t, delivery.ID)
		require.Equal(t, sql.DeliveryStateSucceeded, d.State)
		require.Equal(t, int32(1), d.Attempts)
		require.Equal(t, new(int32(http.StatusNoContent)), d.LastStatus)
		require.Nil(t, d.LastError)
		require.Nil(t, d.NextAttemptAt)
		requireTime(t, b.clock.Now(), d.LastAttemptAt)
		requireTime(t, b.clock.Now(), d.FinishedAt)
		require.Equal(t, []string{"webhook_delivery.succeed"}, b.auditActions(t))
		require.Empty(t, b.liveJobs(t, endpoint.ID), "nothing more to send: no job runs again")

		require.Zero(t, got[0].openTxs, "no transaction is open while the request runs")
		require.Equal(t, deliverCommit{Job: rivertype.JobStateCompleted, Delivery: sql.DeliveryStateSucceeded}, b.probe.lastCommit(t, res.Job.ID, delivery.ID),
			"the job completes in the transaction that records the success")
	})

	t.Run("PrivateAddressRefused", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, 10*time.Second, func(c *Config) { c.HTTPClient = outbound.Client(false) })
		r := newReceiver(t, b)
		endpoint := b.endpoint(t, r, r.srv.URL, core.EventLicenseRevoked)
		delivery := b.emit(t, core.LicenseRevokedEvent{})[endpoint.ID]

		res, err := b.work(t, endpoint.ID)
		require.NoError(t, err, "an endpoint's failure is the delivery's, not the job's")
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
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
		delivery := b.emit(t, core.LicenseRevokedEvent{})[endpoint.ID]

		for attempt := 1; attempt <= WebhookDeliveryMaxAttempts; attempt++ {
			attemptedAt := b.clock.Now()
			res, err := b.work(t, endpoint.ID)
			require.NoError(t, err)
			require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
			require.Empty(t, b.liveJobs(t, endpoint.ID), "a failed run does not enqueue itself again")

			d := b.delivery(t, delivery.ID)
			require.Equal(t, int32(attempt), d.Attempts)
			require.Equal(t, new(int32(http.StatusServiceUnavailable)), d.LastStatus)
			require.Equal(t, new("HTTP 503: down for maintenance"), d.LastError)
			requireTime(t, attemptedAt, d.LastAttemptAt)
			if attempt < WebhookDeliveryMaxAttempts {
				require.Equal(t, sql.DeliveryStatePending, d.State)
				require.Nil(t, d.FinishedAt)
				requireTime(t, attemptedAt.Add(WebhookRetrySchedule[attempt-1]), d.NextAttemptAt)
				b.clock.Set(d.NextAttemptAt.Add(-time.Second))
				b.sweep(t)
				require.Empty(t, b.liveJobs(t, endpoint.ID), "not due yet: the sweep enqueues nothing")
				b.clock.Advance(time.Second)
				b.sweep(t)
				continue
			}
			require.Equal(t, sql.DeliveryStateDead, d.State, "dead after the last attempt")
			require.Nil(t, d.NextAttemptAt)
			requireTime(t, attemptedAt, d.FinishedAt)
		}
		b.sweep(t)
		require.Empty(t, b.liveJobs(t, endpoint.ID), "a dead delivery is not attempted again")

		got := r.received()
		require.Len(t, got, WebhookDeliveryMaxAttempts)
		timestamps := map[string]bool{}
		for _, req := range got {
			require.True(t, req.verified)
			require.Equal(t, delivery.EventID.String(), req.id, "the same webhook-id on every attempt")
			timestamps[req.timestamp] = true
		}
		require.Len(t, timestamps, WebhookDeliveryMaxAttempts, "each attempt is signed at its own time")
		require.Equal(t, factory.Now.Add(71*time.Hour+42*time.Minute+30*time.Second), b.clock.Now(), "the last attempt came about three days later")
		require.Equal(t, []string{"webhook_delivery.die"}, b.auditActions(t))
	})

	t.Run("RecoversAfterFailures", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, 10*time.Second)
		r := newReceiver(t, b)
		r.answer(http.StatusInternalServerError, "")
		endpoint := b.endpoint(t, r, r.srv.URL, core.EventMachineActivated)
		delivery := b.emit(t, core.MachineActivatedEvent{})[endpoint.ID]

		_, err := b.work(t, endpoint.ID)
		require.NoError(t, err)
		require.Equal(t, new("HTTP 500"), b.delivery(t, delivery.ID).LastError)
		r.answer(http.StatusOK, "thanks")
		b.clock.Advance(30 * time.Second)
		b.sweep(t)
		res, err := b.work(t, endpoint.ID)

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
		delivery := b.emit(t, core.LicenseIssuedEvent{})[endpoint.ID]

		_, err := b.work(t, endpoint.ID)

		require.NoError(t, err)
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
		delivery := b.emit(t, core.LicenseIssuedEvent{})[endpoint.ID]

		_, err := b.work(t, endpoint.ID)

		require.NoError(t, err)
		require.Equal(t, new("HTTP 302"), b.delivery(t, delivery.ID).LastError)
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
		delivery := b.emit(t, core.LicenseIssuedEvent{})[endpoint.ID]

		res, err := b.work(t, endpoint.ID)

		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		d := b.delivery(t, delivery.ID)
		require.Equal(t, sql.DeliveryStatePending, d.State)
		require.Equal(t, int32(1), d.Attempts)
		require.Nil(t, d.LastStatus)
		require.Equal(t, new("no response within 100ms"), d.LastError)
	})

	t.Run("BatchOldestFirstThenRunsAgain", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, 10*time.Second)
		r := newReceiver(t, b)
		endpoint := b.endpoint(t, r, r.srv.URL, core.EventLicenseIssued)
		const n = defaultWebhookBatch + 5
		var events []string
		for range n {
			d := b.emit(t, core.LicenseIssuedEvent{})[endpoint.ID]
			events = append(events, d.EventID.String())
			b.clock.Advance(time.Millisecond)
		}
		require.Len(t, b.liveJobs(t, endpoint.ID), 1, n, "one job for the endpoint however many deliveries")

		first, err := b.work(t, endpoint.ID)
		require.NoError(t, err)
		require.Len(t, r.received(), defaultWebhookBatch, "a bounded batch per run")
		next := b.job(t, endpoint.ID)
		require.NotEqual(t, first.Job.ID, next.ID, "the run enqueued the endpoint's job again, behind other endpoints' jobs")
		require.Equal(t, rivertype.JobStateAvailable, next.State)
		require.Equal(t, deliverCommit{Job: rivertype.JobStateCompleted}, b.probe.lastCommit(t, first.Job.ID, uuid.Nil),
			"completed in the transaction that enqueued the next")

		_, err = b.work(t, endpoint.ID)
		require.NoError(t, err)
		require.Empty(t, b.liveJobs(t, endpoint.ID), "all sent: no job runs again")
		var sent []string
		for _, req := range r.received() {
			require.True(t, req.verified)
			sent = append(sent, req.id)
		}
		require.Equal(t, events, sent, "oldest first")
	})

	t.Run("StopsAtTheFirstFailure", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, 10*time.Second)
		r := newReceiver(t, b)
		r.answer(http.StatusBadGateway, "")
		endpoint := b.endpoint(t, r, r.srv.URL, core.EventLicenseIssued)
		oldest := b.emit(t, core.LicenseIssuedEvent{})[endpoint.ID]
		b.clock.Advance(time.Millisecond)
		others := []sql.WebhookDelivery{b.emit(t, core.LicenseIssuedEvent{})[endpoint.ID], b.emit(t, core.LicenseIssuedEvent{})[endpoint.ID]}

		_, err := b.work(t, endpoint.ID)

		require.NoError(t, err)
		require.Len(t, r.received(), 1, "a dead endpoint costs one attempt per run")
		require.Equal(t, int32(1), b.delivery(t, oldest.ID).Attempts)
		requireTime(t, b.clock.Now().Add(30*time.Second), b.delivery(t, oldest.ID).NextAttemptAt)
		for _, d := range others {
			require.Zero(t, b.delivery(t, d.ID).Attempts)
		}
		require.Empty(t, b.liveJobs(t, endpoint.ID), "the sweep runs it again")
		b.sweep(t)
		require.Len(t, b.liveJobs(t, endpoint.ID), 1, "the others are due")
		_, err = b.work(t, endpoint.ID)
		require.NoError(t, err)
		require.Equal(t, int32(1), b.delivery(t, others[0].ID).Attempts, "the next due one, not the one backing off")
		require.Equal(t, int32(1), b.delivery(t, oldest.ID).Attempts)
	})

	t.Run("DeliveryCreatedWhileRunningIsSentByTheNextRun", func(t *testing.T) {
		t.Parallel()
		// The run stops after its first attempt: a batch of one.
		b := setupDeliver(t, 10*time.Second, func(c *Config) { c.WebhookBatch = 1 })
		var second map[uuid.UUID]sql.WebhookDelivery
		var endpoint sql.WebhookEndpoint
		r := newReceiver(t, b)
		emitted := false
		r.onRequest = func() {
			if !emitted { // while the first attempt runs (no worker transaction is open)
				emitted = true
				second = b.emit(t, core.LicenseRevokedEvent{})
			}
		}
		endpoint = b.endpoint(t, r, r.srv.URL, core.EventLicenseIssued, core.EventLicenseRevoked)
		b.emit(t, core.LicenseIssuedEvent{})
		job := b.job(t, endpoint.ID)

		res, err := b.worker.WorkJob(context.Background(), t, b.tx, job)

		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		require.Len(t, second, 1)
		require.Len(t, b.liveJobs(t, endpoint.ID), 1, "its unique insert was skipped while the job ran; the run saw it and enqueued the job again")
		_, err = b.work(t, endpoint.ID)
		require.NoError(t, err)
		require.Equal(t, sql.DeliveryStateSucceeded, b.delivery(t, second[endpoint.ID].ID).State)
	})

	t.Run("FinishedDeliveryIsNotSentAgain", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, 10*time.Second)
		r := newReceiver(t, b)
		endpoint := b.endpoint(t, r, r.srv.URL, core.EventLicenseIssued)
		delivery := b.emit(t, core.LicenseIssuedEvent{})[endpoint.ID]
		_, err := b.work(t, endpoint.ID)
		require.NoError(t, err)

		// Another job for the endpoint (say, a completed one retried in River UI) completes and sends nothing.
		res, err := b.worker.Work(context.Background(), t, b.tx, jobargs.WebhookDeliver{TenantID: b.tenant.ID, EndpointID: endpoint.ID}, nil)

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
		b.emit(t, core.LicenseIssuedEvent{})
		job := b.job(t, endpoint.ID)
		_, err := core.WebhookEndpointDelete(context.Background(), b.tx, b.step(), core.WebhookEndpointDeleteParams{TenantID: b.tenant.ID, ID: endpoint.ID})
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
		delivery := b.emit(t, core.LicenseIssuedEvent{})[endpoint.ID]
		_, err := b.work(t, endpoint.ID)
		require.NoError(t, err)
		backingOff := b.emit(t, core.LicenseIssuedEvent{})[endpoint.ID]
		_, err = b.tx.Exec(context.Background(), `UPDATE webhook_deliveries SET next_attempt_at = $2 WHERE id = $1`, backingOff.ID, b.clock.Now().Add(time.Hour))
		require.NoError(t, err)
		_, err = core.WebhookEndpointUpdate(context.Background(), b.tx, b.step(), core.WebhookEndpointUpdateParams{
			TenantID: b.tenant.ID, ID: endpoint.ID, Enabled: new(false),
		})
		require.NoError(t, err)
		_, err = b.tx.Exec(context.Background(), `UPDATE river_job SET state = 'completed', finalized_at = now() WHERE kind = $1`, jobargs.WebhookDeliver{}.Kind())
		require.NoError(t, err)

		b.sweep(t) // a disabled endpoint's pending deliveries are work, due or not
		res, err := b.work(t, endpoint.ID)

		require.NoError(t, err)
		require.Equal(t, rivertype.JobStateCompleted, res.Job.State)
		require.Len(t, r.received(), 1, "only the delivery sent before it was disabled")
		require.Equal(t, sql.DeliveryStateSucceeded, b.delivery(t, delivery.ID).State)
		d := b.delivery(t, backingOff.ID)
		require.Equal(t, sql.DeliveryStateDead, d.State)
		require.Equal(t, int32(0), d.Attempts)
		require.Equal(t, new("the endpoint is disabled; not attempted"), d.LastError)
		require.Nil(t, d.NextAttemptAt)
		requireTime(t, b.clock.Now(), d.FinishedAt)
		require.Equal(t, []string{"webhook_delivery.succeed", "webhook_delivery.die"}, b.auditActions(t))
		require.Empty(t, b.liveJobs(t, endpoint.ID))
	})

	t.Run("RotatedSecretSignsRetries", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, 10*time.Second)
		r := newReceiver(t, b)
		r.answer(http.StatusBadGateway, "")
		endpoint := b.endpoint(t, r, r.srv.URL, core.EventLicenseIssued)
		oldSecret := r.secret
		b.emit(t, core.LicenseIssuedEvent{})
		_, err := b.work(t, endpoint.ID)
		require.NoError(t, err)

		_, newSecret, err := core.WebhookEndpointRotateSecret(context.Background(), b.tx, b.step(), core.WebhookEndpointRotateSecretParams{
			TenantID: b.tenant.ID, ID: endpoint.ID,
		})
		require.NoError(t, err)
		require.NotEqual(t, oldSecret, newSecret)
		r.setSecret(newSecret)
		r.answer(http.StatusOK, "")
		b.clock.Advance(30 * time.Second)
		b.sweep(t)
		_, err = b.work(t, endpoint.ID)
		require.NoError(t, err)

		got := r.received()
		require.Len(t, got, 2)
		require.True(t, got[0].verified, "the first attempt was signed with the old secret")
		require.True(t, got[1].verified, "the retry is signed with the new secret")
		require.False(t, verifySignature(oldSecret, got[1].id, got[1].timestamp, got[1].body, got[1].signature),
			"the old secret no longer verifies")
	})

	t.Run("AdminRetryOfDeadDeliverySendsIt", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, 10*time.Second)
		r := newReceiver(t, b)
		r.answer(http.StatusServiceUnavailable, "")
		endpoint := b.endpoint(t, r, r.srv.URL, core.EventLicenseIssued)
		delivery := b.emit(t, core.LicenseIssuedEvent{})[endpoint.ID]
		_, err := b.tx.Exec(context.Background(), `UPDATE webhook_deliveries SET round_attempts = $2 WHERE id = $1`, delivery.ID, WebhookDeliveryMaxAttempts-1)
		require.NoError(t, err)
		_, err = b.work(t, endpoint.ID)
		require.NoError(t, err)
		require.Equal(t, sql.DeliveryStateDead, b.delivery(t, delivery.ID).State, "its last attempt failed")

		r.answer(http.StatusOK, "")
		b.clock.Advance(time.Hour)
		require.NoError(t, pg.InTx(context.Background(), b.tx, func(tx pgx.Tx) error {
			_, err := core.WebhookDeliveryRetry(context.Background(), tx, b.step(), core.WebhookDeliveryRetryParams{TenantID: b.tenant.ID, ID: delivery.ID})
			return err
		}))
		_, err = b.work(t, endpoint.ID)

		require.NoError(t, err)
		d := b.delivery(t, delivery.ID)
		require.Equal(t, sql.DeliveryStateSucceeded, d.State)
		require.Equal(t, int32(2), d.Attempts)
		require.Equal(t, int32(1), d.RoundAttempts, "a fresh budget")
		got := r.received()
		require.Len(t, got, 2)
		require.True(t, got[1].verified)
	})

	t.Run("EmitCreatesOneDeliveryPerSubscribedEnabledEndpoint", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, 10*time.Second)
		subscribed := b.endpoint(t, nil, "https://a.example/hooks", core.EventLicenseIssued, core.EventLicenseRevoked)
		alsoSubscribed := b.endpoint(t, nil, "https://b.example/hooks", core.EventLicenseIssued)
		disabled := b.endpoint(t, nil, "https://c.example/hooks", core.EventLicenseIssued)
		_, err := core.WebhookEndpointUpdate(context.Background(), b.tx, b.step(), core.WebhookEndpointUpdateParams{
			TenantID: b.tenant.ID, ID: disabled.ID, Enabled: new(false),
		})
		require.NoError(t, err)
		b.endpoint(t, nil, "https://d.example/hooks", core.EventLicenseRevoked) // not subscribed
		other := factory.Tenant(t, b.tx)
		_, _, err = core.WebhookEndpointCreate(context.Background(), b.tx, b.step(), core.WebhookEndpointCreateParams{
			TenantID: other.ID, MaxEndpoints: core.WebhookMaxEndpointsDefault, URL: "https://other.example/hooks", EventTypes: []string{core.EventLicenseIssued},
		})
		require.NoError(t, err)

		created := b.emit(t, core.LicenseIssuedEvent{})

		require.Len(t, created, 2)
		require.Contains(t, created, subscribed.ID)
		require.Contains(t, created, alsoSubscribed.ID)
		require.Equal(t, created[subscribed.ID].EventID, created[alsoSubscribed.ID].EventID, "one event, two deliveries")
		for endpointID, d := range created {
			require.Equal(t, sql.DeliveryStatePending, d.State)
			require.Equal(t, int32(0), d.Attempts)
			requireTime(t, b.clock.Now(), d.NextAttemptAt)
			job := b.job(t, endpointID)
			require.Equal(t, jobargs.QueueWebhooks, job.Queue)
			require.Equal(t, rivertype.JobStateAvailable, job.State)
		}
		require.Empty(t, b.liveJobs(t, disabled.ID))
		require.Empty(t, b.emit(t, core.MachineActivatedEvent{}), "no endpoint subscribes to it")
	})

	t.Run("EmitRefusesUnknownType", func(t *testing.T) {
		t.Parallel()
		b := setupDeliver(t, 10*time.Second)
		err := pg.InTx(context.Background(), b.tx, func(tx pgx.Tx) error {
			return core.Emit(context.Background(), tx, core.Step{Jobs: b.inserter, Now: b.clock.Now()}, core.Event{TenantID: b.tenant.ID, Data: explodedEvent{}})
		})
		require.EqualError(t, err, `emit event: unknown event type "license.exploded": add it to core.EventCatalog`)
	})
}

// explodedEvent is the data of an event type Tessera does not have.
type explodedEvent struct{}

func (explodedEvent) EventType() string { return "license.exploded" }

// riverBundle is a real River client with Tessera's workers on its own database, for tests
// of what River does with webhook.deliver jobs.
type riverBundle struct {
	pool   *pgxpool.Pool
	clock  *clock.Manual
	client *river.Client[pgx.Tx]
}

// setupRiver returns a River client, not started, working the webhooks queue with
// webhookWorkers workers and, when periodic, Tessera's periodic jobs on the default queue.
func setupRiver(t *testing.T, webhookWorkers int, periodic bool) *riverBundle {
	t.Helper()
	pool, _ := testdb.Clone(t)
	b := &riverBundle{pool: pool, clock: clock.NewManual(factory.Now)}
	log := slog.New(slog.DiscardHandler)
	cfg := Config{DB: pool, Clock: b.clock, Log: log, Box: factory.Box, Payments: factory.FakeBTCPay(t, "").Client, Rates: factory.Rates(t),
		WebhookTimeout: time.Minute, AllowPrivateNetworks: true}
	workers, err := Workers(cfg)
	require.NoError(t, err)
	config := &river.Config{
		Logger:   log,
		Queues:   map[string]river.QueueConfig{jobargs.QueueWebhooks: {MaxWorkers: webhookWorkers}},
		Workers:  workers,
		TestOnly: true,
	}
	if periodic {
		config.Queues[river.QueueDefault] = river.QueueConfig{MaxWorkers: 1}
		config.PeriodicJobs, err = PeriodicJobs(cfg)
		require.NoError(t, err)
	}
	b.client, err = river.NewClient(riverpgxv5.New(pool), config)
	require.NoError(t, err)
	return b
}

// start starts the client; it stops when the test ends.
func (b *riverBundle) start(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, b.client.Start(ctx))
	t.Cleanup(func() { require.NoError(t, b.client.StopAndCancel(context.WithoutCancel(ctx))) })
}

// endpoint creates an endpoint of tenantID at url subscribed to license.issued and tells r
// (when given) its secret.
func (b *riverBundle) endpoint(t *testing.T, tenantID uuid.UUID, r *receiver, url string) sql.WebhookEndpoint {
	t.Helper()
	var endpoint sql.WebhookEndpoint
	var secret string
	err := pg.InTx(context.Background(), b.pool, func(tx pgx.Tx) (err error) {
		st := core.Step{Now: b.clock.Now(), Actor: factory.Actor, Box: factory.Box, Jobs: b.client}
		endpoint, secret, err = core.WebhookEndpointCreate(context.Background(), tx, st, core.WebhookEndpointCreateParams{
			TenantID: tenantID, MaxEndpoints: core.WebhookMaxEndpointsDefault, URL: url, EventTypes: []string{core.EventLicenseIssued},
		})
		return err
	})
	require.NoError(t, err)
	if r != nil {
		r.setSecret(secret)
	}
	return endpoint
}

// emit commits a license.issued event of tenantID, enqueueing with the bundle's client.
func (b *riverBundle) emit(t *testing.T, tenantID uuid.UUID) {
	t.Helper()
	ctx := context.Background()
	require.NoError(t, pg.InTx(ctx, b.pool, func(tx pgx.Tx) error {
		return core.Emit(ctx, tx, core.Step{Jobs: b.client, Now: b.clock.Now()}, core.Event{TenantID: tenantID, Data: core.LicenseIssuedEvent{}})
	}))
}

// job returns the id of the endpoint's one webhook.deliver job.
func (b *riverBundle) job(t *testing.T, endpointID uuid.UUID) int64 {
	t.Helper()
	var id int64
	require.NoError(t, b.pool.QueryRow(context.Background(), `SELECT id FROM river_job WHERE kind = $1 AND args->>'endpoint_id' = $2`,
		jobargs.WebhookDeliver{}.Kind(), endpointID.String()).Scan(&id))
	return id
}

// attempts returns the attempts of the endpoint's deliveries, oldest first.
func (b *riverBundle) attempts(t *testing.T, endpointID uuid.UUID) []int32 {
	t.Helper()
	rows, err := b.pool.Query(context.Background(), `SELECT attempts FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY id`, endpointID)
	require.NoError(t, err)
	attempts, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	require.NoError(t, err)
	return attempts
}

// waitReceived waits until r has received n requests.
func waitReceived(t *testing.T, r *receiver, n int) {
	t.Helper()
	require.Eventually(t, func() bool { return len(r.received()) >= n }, 30*time.Second, 10*time.Millisecond,
		"the receiver got %d of %d requests", len(r.received()), n)
}

// TestWebhookDeliverJobInRiver is what River UI's Retry, Cancel and Delete do to a
// webhook.deliver job (through River's client API, as River UI calls it): retrying a
// cancelled or discarded job runs it again and sends the endpoint's due deliveries;
// deleting (or cancelling) one leaves its deliveries pending, and the webhook.deliver_sweep
// enqueues a new job that sends them.
func TestWebhookDeliverJobInRiver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupRiver(t, 2, true)
	tenant := factory.Tenant(t, b.pool)
	cancelled, discarded, deleted := newReceiver(t, nil), newReceiver(t, nil), newReceiver(t, nil)
	cancelledEndpoint := b.endpoint(t, tenant.ID, cancelled, cancelled.srv.URL)
	discardedEndpoint := b.endpoint(t, tenant.ID, discarded, discarded.srv.URL)
	deletedEndpoint := b.endpoint(t, tenant.ID, deleted, deleted.srv.URL)
	b.emit(t, tenant.ID)

	cancelledJob, err := b.client.JobCancel(ctx, b.job(t, cancelledEndpoint.ID))
	require.NoError(t, err)
	require.Equal(t, rivertype.JobStateCancelled, cancelledJob.State)
	discardedJob := b.job(t, discardedEndpoint.ID)
	_, err = b.pool.Exec(ctx, `UPDATE river_job SET state = 'discarded', attempt = max_attempts, finalized_at = now() WHERE id = $1`, discardedJob)
	require.NoError(t, err)
	deletedJob, err := b.client.JobDelete(ctx, b.job(t, deletedEndpoint.ID))
	require.NoError(t, err)
	require.Equal(t, []int32{0}, b.attempts(t, deletedEndpoint.ID), "the delivery is still pending, with no job")

	_, err = b.client.JobRetry(ctx, cancelledJob.ID)
	require.NoError(t, err)
	_, err = b.client.JobRetry(ctx, discardedJob)
	require.NoError(t, err)

	// A cancelled job whose endpoint has a live job again cannot be retried: that job sends.
	other := factory.Tenant(t, b.pool)
	replacedReceiver := newReceiver(t, nil)
	replaced := b.endpoint(t, other.ID, replacedReceiver, replacedReceiver.srv.URL)
	b.emit(t, other.ID)
	replacedJob, err := b.client.JobCancel(ctx, b.job(t, replaced.ID))
	require.NoError(t, err)
	b.emit(t, other.ID)
	_, err = b.client.JobRetry(ctx, replacedJob.ID)
	var pgErr *pgconn.PgError
	require.ErrorAs(t, err, &pgErr)
	require.Equal(t, "river_job_unique_idx", pgErr.ConstraintName)
	b.start(t)

	for _, r := range []*receiver{cancelled, discarded, deleted} {
		waitReceived(t, r, 1)
	}
	waitReceived(t, replacedReceiver, 2)
	for name, retried := range map[string]int64{"cancelled": cancelledJob.ID, "discarded": discardedJob} {
		require.Eventually(t, func() bool {
			job, err := b.client.JobGet(ctx, retried)
			return err == nil && job.State == rivertype.JobStateCompleted
		}, 30*time.Second, 10*time.Millisecond, "the retried %s job ran and completed", name)
	}
	var sweptJobs int
	require.NoError(t, b.pool.QueryRow(ctx, `SELECT count(*) FROM river_job WHERE kind = $1 AND args->>'endpoint_id' = $2 AND id <> $3`,
		jobargs.WebhookDeliver{}.Kind(), deletedEndpoint.ID.String(), deletedJob.ID).Scan(&sweptJobs))
	require.Equal(t, 1, sweptJobs, "the sweep enqueued a new job for the deleted one's delivery")
	for _, r := range []*receiver{cancelled, discarded, deleted} {
		got := r.received()
		require.Len(t, got, 1)
		require.True(t, got[0].verified)
	}
	for _, endpoint := range []sql.WebhookEndpoint{cancelledEndpoint, discardedEndpoint, deletedEndpoint} {
		require.Eventually(t, func() bool {
			var state string
			err := b.pool.QueryRow(ctx, `SELECT state::text FROM webhook_deliveries WHERE endpoint_id = $1`, endpoint.ID).Scan(&state)
			return err == nil && state == string(sql.DeliveryStateSucceeded)
		}, 30*time.Second, 10*time.Millisecond)
	}
}

// TestWebhookDeliveryFairAcrossTenants runs Tessera's workers on a real River client with two
// webhook workers. Tenant A has 40 deliveries queued to an endpoint that hangs (it answers
// only when the test ends) and 40 to one that refuses connections, all enqueued before
// tenant B's one delivery. With one job per endpoint, B's job waits behind A's two jobs,
// not behind A's 80 deliveries: B is delivered while A's hanging endpoint has had one
// request and A's dead one one attempt.
func TestWebhookDeliveryFairAcrossTenants(t *testing.T) {
	t.Parallel()
	b := setupRiver(t, 2, false)
	tenantA, tenantB := factory.Tenant(t, b.pool), factory.Tenant(t, b.pool)

	var hangingRequests atomic.Int32
	release := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hangingRequests.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hanging.Close)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	hangingEndpoint := b.endpoint(t, tenantA.ID, nil, hanging.URL)
	deadEndpoint := b.endpoint(t, tenantA.ID, nil, dead.URL)
	const queued = 40
	for range queued {
		b.emit(t, tenantA.ID)
	}
	fair := newReceiver(t, nil)
	fairEndpoint := b.endpoint(t, tenantB.ID, fair, fair.srv.URL)
	b.emit(t, tenantB.ID)

	b.start(t)
	t.Cleanup(func() { close(release) }) // runs first: the hanging handler returns, then River stops
	waitReceived(t, fair, 1)

	got := fair.received()
	require.True(t, got[0].verified)
	require.Eventually(t, func() bool { return hangingRequests.Load() > 0 }, 30*time.Second, 10*time.Millisecond,
		"A's hanging endpoint holds one worker")
	require.Equal(t, int32(1), hangingRequests.Load(), "one request at a time per endpoint")
	deadAttempts := b.attempts(t, deadEndpoint.ID)
	require.Len(t, deadAttempts, queued)
	require.Equal(t, int32(1), deadAttempts[0], "the dead endpoint cost one attempt")
	for _, n := range deadAttempts[1:] {
		require.Zero(t, n, "its other deliveries wait for the next run")
	}
	require.Len(t, b.attempts(t, hangingEndpoint.ID), queued)
	require.Eventually(t, func() bool {
		attempts := b.attempts(t, fairEndpoint.ID)
		return len(attempts) == 1 && attempts[0] == 1
	}, 30*time.Second, 10*time.Millisecond)
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
		_, err := b.tx.Exec(ctx, "UPDATE webhook_deliveries SET state = $3::delivery_state, finished_at = now(), next_attempt_at = NULL WHERE tenant_id = $1 AND id = $2",
			b.tenant.ID, d.ID, state)
		require.NoError(t, err)
	}
	succeeded := b.emit(t, core.LicenseRevokedEvent{})[endpoint.ID]
	setState(succeeded, sql.DeliveryStateSucceeded)
	dead := b.emit(t, core.LicenseRevokedEvent{})[endpoint.ID]
	setState(dead, sql.DeliveryStateDead)
	pending := b.emit(t, core.LicenseRevokedEvent{})[endpoint.ID]
	require.Empty(t, b.emit(t, core.LicenseIssuedEvent{}), "no endpoint wants it")
	// A sandbox whose clock stands where these events happened keeps its own.
	sandbox := factory.SandboxTenant(t, b.tx, factory.Now)
	require.NoError(t, pg.InTx(ctx, b.tx, func(tx pgx.Tx) error {
		return core.Emit(ctx, tx, factory.Step(), core.Event{TenantID: sandbox.ID, Data: core.LicenseRevokedEvent{}})
	}))
	b.clock.Advance(31 * 24 * time.Hour)
	recent := b.emit(t, core.LicenseRevokedEvent{})[endpoint.ID]
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
	rows, err := b.tx.Query(ctx, "SELECT id FROM events WHERE tenant_id = $1 ORDER BY occurred_at, id", b.tenant.ID)
	require.NoError(t, err)
	events, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	require.NoError(t, err)
	require.Equal(t, []uuid.UUID{pending.EventID, recent.EventID}, events, "the old events without pending deliveries are gone")

	var kept int
	require.NoError(t, b.tx.QueryRow(ctx, "SELECT count(*) FROM events WHERE tenant_id = $1", sandbox.ID).Scan(&kept))
	require.Equal(t, 1, kept, "a sandbox's events are old by its own clock")

	_, err = worker.Work(ctx, t, b.tx, jobargs.EventRetentionSweep{}, nil)
	require.NoError(t, err, "a second sweep finds nothing more to delete")
	require.Len(t, b.deliveries(t), 2)
}
