package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/webhook"
	"github.com/tessera/tessera/sql"
)

// WebhookRetrySchedule is how long a failed delivery waits before its next attempt: after
// attempt n of a round fails, the wait is WebhookRetrySchedule[n-1], measured from when
// attempt n started. Twelve waits make WebhookDeliveryMaxAttempts (13) attempts over 2
// days, 23 hours and 42.5 minutes (plus the attempts' own time): about three days, after
// which the delivery is dead. A round starts when the delivery is created and again when an
// admin retries it. WebhookRetryAt applies it.
var WebhookRetrySchedule = [WebhookDeliveryMaxAttempts - 1]time.Duration{
	30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour,
	12 * time.Hour, 12 * time.Hour, 16 * time.Hour, 16 * time.Hour,
}

// WebhookDeliveryMaxAttempts is how many attempts a delivery gets in a round before it is
// dead.
const WebhookDeliveryMaxAttempts = 13

const (
	// webhookUserAgent identifies Tessera's webhook requests.
	webhookUserAgent = "Tessera-Webhooks/1"
	// maxWebhookErrorLen bounds a delivery's recorded last_error, in bytes.
	maxWebhookErrorLen = 1000
	// webhookResponseExcerpt is how much of a failed response's body last_error quotes.
	webhookResponseExcerpt = 256
	// webhookResponseDrain is how much of a response's body is read so that its connection
	// can be reused.
	webhookResponseDrain = 64 << 10
	// defaultWebhookBatch is Config.WebhookBatch's default.
	defaultWebhookBatch = 20
	// webhookAbandonBatch is the most deliveries of a disabled endpoint one run abandons.
	webhookAbandonBatch = 1000
	// webhookJobRetry is how long River waits to run a failed webhook.deliver job again.
	webhookJobRetry = 5 * time.Second
)

// WebhookRetryAt is when a delivery whose attempt n of a round (counting from 1) started at
// attemptedAt and failed is attempted next: the wait is WebhookRetrySchedule[n-1], the last
// one for an n past the schedule.
func WebhookRetryAt(attemptedAt time.Time, n int) time.Time {
	n = min(max(n, 1), len(WebhookRetrySchedule))
	return attemptedAt.Add(WebhookRetrySchedule[n-1])
}

// WebhookDeliverWorker sends one endpoint's due deliveries (WebhookDeliveryClaimNextDue:
// pending and due, oldest due first), each POSTed with the Standard Webhooks payload,
// signed with the endpoint's secret. It stops after Config.WebhookBatch attempts, after
// Config.WebhookTimeout has passed since the run started, or at the first failed attempt:
// that delivery waits its step of WebhookRetrySchedule, so a dead endpoint costs one attempt
// per run. A 2xx succeeds the delivery; anything else, or no answer within
// Config.WebhookTimeout, fails the attempt, and the delivery is dead after
// WebhookDeliveryMaxAttempts. Each outcome is recorded in its own transaction, the last one
// in the transaction that completes the job; the request is never sent inside a
// transaction, so no connection is held while an endpoint is slow.
//
// There is one live job per endpoint (jobargs.WebhookDeliver is unique), so the queue holds
// at most one job per endpoint and a flooded, slow or dead endpoint holds at most one
// worker: another tenant's job waits behind other endpoints' jobs, never behind one
// endpoint's backlog. When the run ends with work still due and did not fail, the job
// enqueues itself again in its completing transaction (after other endpoints' queued jobs);
// otherwise the webhook.deliver_sweep or the next delivery to the endpoint enqueues it.
//
// A disabled endpoint's pending deliveries become dead without being sent (a batch per
// run); a deleted endpoint's job does nothing. Retrying a discarded or cancelled job from
// River UI runs it again: it sends whatever of the endpoint is due.
type WebhookDeliverWorker struct {
	river.WorkerDefaults[jobargs.WebhookDeliver]
	cfg Config
}

// NextRetry runs a failed job (a database error) again after webhookJobRetry: while it
// waits, no other job for the endpoint can be enqueued.
func (w *WebhookDeliverWorker) NextRetry(*river.Job[jobargs.WebhookDeliver]) time.Time {
	return w.cfg.Clock.Now().Add(webhookJobRetry)
}

// Timeout bounds one run: attempts are started within Config.WebhookTimeout of the run's
// start, each takes at most Config.WebhookTimeout, and its outcome is then recorded within
// Config.JobTimeout (even when the job's context is cancelled, so no attempt goes unrecorded).
func (w *WebhookDeliverWorker) Timeout(*river.Job[jobargs.WebhookDeliver]) time.Duration {
	return 2*w.cfg.WebhookTimeout + w.cfg.jobTimeout()
}

// Work sends the endpoint's due deliveries and completes the job.
func (w *WebhookDeliverWorker) Work(ctx context.Context, job *river.Job[jobargs.WebhookDeliver]) error {
	args := job.Args
	endpoint, err := queries.WebhookEndpointGet(ctx, w.cfg.DB, sql.WebhookEndpointGetParams{TenantID: args.TenantID, ID: args.EndpointID})
	switch {
	case errors.Is(err, core.ErrNotFound):
		w.cfg.Log.InfoContext(ctx, "webhook endpoint is gone; nothing to send", "endpoint_id", args.EndpointID)
		return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error { return complete(ctx, tx, job) })
	case err != nil:
		return fmt.Errorf("load webhook endpoint %s: %w", args.EndpointID, err)
	case !endpoint.Enabled:
		return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error {
			if err := w.abandon(ctx, tx, job); err != nil {
				return err
			}
			return w.finish(ctx, tx, job, false)
		})
	}

	started := clock.System{}.Now() // the run's own duration, not the domain clock
	for n := 1; ; n++ {
		st, err := w.cfg.tenantStep(ctx, w.cfg.DB, job.JobRow, args.TenantID)
		if err != nil {
			return err
		}
		attemptedAt := st.Now
		d, err := queries.WebhookDeliveryClaimNextDue(ctx, w.cfg.DB, sql.WebhookDeliveryClaimNextDueParams{
			TenantID: args.TenantID, EndpointID: args.EndpointID, Now: attemptedAt,
			LeaseUntil: attemptedAt.Add(w.Timeout(job)),
		})
		switch {
		case errors.Is(err, core.ErrNotFound):
			return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error { return w.finish(ctx, tx, job, false) })
		case err != nil:
			return fmt.Errorf("claim a due delivery of webhook endpoint %s: %w", args.EndpointID, err)
		}

		status, attemptErr := w.send(ctx, d, attemptedAt)
		last := attemptErr != nil || ctx.Err() != nil || n >= w.cfg.WebhookBatch || time.Since(started) >= w.cfg.WebhookTimeout
		// Recorded even if the job's context ended meanwhile: the attempt was made.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.jobTimeout())
		err = pg.InTx(rctx, w.cfg.DB, func(tx pgx.Tx) error {
			if err := w.record(rctx, tx, job, d, attemptedAt, status, attemptErr); err != nil {
				return err
			}
			if !last {
				return nil
			}
			return w.finish(rctx, tx, job, attemptErr != nil)
		})
		cancel()
		if err != nil || last {
			return err
		}
	}
}

// finish completes the job in tx and, unless the run failed an attempt, enqueues the job
// again when the endpoint still has work due. It locks the endpoint first
// (WebhookEndpointLockForDeliver), so a delivery created meanwhile is either seen here or
// enqueues the job itself.
func (w *WebhookDeliverWorker) finish(ctx context.Context, tx pgx.Tx, job *river.Job[jobargs.WebhookDeliver], failed bool) error {
	args := job.Args
	_, err := queries.WebhookEndpointLockForDeliver(ctx, tx, sql.WebhookEndpointLockForDeliverParams{TenantID: args.TenantID, ID: args.EndpointID})
	switch {
	case errors.Is(err, core.ErrNotFound):
		return complete(ctx, tx, job)
	case err != nil:
		return fmt.Errorf("lock webhook endpoint %s: %w", args.EndpointID, err)
	}
	if err := complete(ctx, tx, job); err != nil {
		return err
	}
	if failed {
		return nil
	}
	st, err := w.cfg.tenantStep(ctx, tx, job.JobRow, args.TenantID)
	if err != nil {
		return err
	}
	more, err := queries.WebhookEndpointHasWork(ctx, tx, sql.WebhookEndpointHasWorkParams{TenantID: args.TenantID, ID: args.EndpointID, Now: st.Now})
	if err != nil || !more {
		return err
	}
	// After JobCompleteTx: the job is no longer live, so the unique insert makes a new one.
	return core.WebhookDeliverEnqueue(ctx, tx, st, core.WebhookDeliverEnqueueParams{TenantID: args.TenantID, EndpointIDs: []uuid.UUID{args.EndpointID}})
}

// record records an attempt's outcome (attemptErr nil for a 2xx) and, when the delivery
// finished, audits it. A delivery that is no longer pending (an admin deleted its endpoint
// meanwhile) records nothing.
func (w *WebhookDeliverWorker) record(ctx context.Context, tx pgx.Tx, job *river.Job[jobargs.WebhookDeliver], d sql.WebhookDeliveryClaimNextDueRow, attemptedAt time.Time, status int32, attemptErr error) error {
	st, err := w.cfg.tenantStep(ctx, tx, job.JobRow, job.Args.TenantID)
	if err != nil {
		return err
	}
	params := sql.WebhookDeliveryRecordAttemptParams{
		TenantID: job.Args.TenantID, ID: d.ID, Succeeded: attemptErr == nil, AttemptedAt: attemptedAt,
		RetryAt: WebhookRetryAt(attemptedAt, int(d.RoundAttempts)+1), MaxAttempts: WebhookDeliveryMaxAttempts, Now: st.Now,
	}
	if status != 0 {
		params.LastStatus = &status
	}
	if attemptErr != nil {
		message := truncateWebhookError(attemptErr.Error())
		params.LastError = &message
	}
	recorded, err := queries.WebhookDeliveryRecordAttempt(ctx, tx, params)
	switch {
	case errors.Is(err, core.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("record attempt of webhook delivery %s: %w", d.ID, err)
	case recorded.State == sql.DeliveryStatePending:
		w.cfg.Log.InfoContext(ctx, "webhook delivery attempt failed", "delivery_id", d.ID, "attempt", recorded.RoundAttempts,
			"next_attempt_at", recorded.NextAttemptAt, "error", attemptErr)
		return nil
	}
	action := "webhook_delivery.succeed"
	if recorded.State == sql.DeliveryStateDead {
		action = "webhook_delivery.die"
	}
	return core.Audit(ctx, tx, st, core.Change{TenantID: job.Args.TenantID,
		Action: action, SubjectType: "webhook_delivery", SubjectID: d.ID.String(),
		Details: map[string]any{"attempts": recorded.Attempts, "last_status": recorded.LastStatus, "last_error": recorded.LastError},
	})
}

// abandon makes a batch of a disabled endpoint's pending deliveries dead without sending
// them and audits each.
func (w *WebhookDeliverWorker) abandon(ctx context.Context, tx pgx.Tx, job *river.Job[jobargs.WebhookDeliver]) error {
	args := job.Args
	st, err := w.cfg.tenantStep(ctx, tx, job.JobRow, args.TenantID)
	if err != nil {
		return err
	}
	const reason = "the endpoint is disabled; not attempted"
	ids, err := queries.WebhookDeliveryAbandonPending(ctx, tx, sql.WebhookDeliveryAbandonPendingParams{
		TenantID: args.TenantID, EndpointID: args.EndpointID, Reason: reason, Now: st.Now, Batch: webhookAbandonBatch,
	})
	if err != nil {
		return fmt.Errorf("abandon deliveries of webhook endpoint %s: %w", args.EndpointID, err)
	}
	for _, id := range ids {
		err := core.Audit(ctx, tx, st, core.Change{TenantID: args.TenantID,
			Action: "webhook_delivery.die", SubjectType: "webhook_delivery", SubjectID: id.String(),
			Details: map[string]any{"last_error": reason},
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// WebhookDeliverSweepWorker enqueues, in one transaction that completes the job, the
// webhook.deliver job of every endpoint with work due (WebhookEndpointListWorkAllTenants);
// the unique inserts skip endpoints whose job is live. It heals what no job would otherwise
// send: deliveries whose backoff has passed, and those whose job was cancelled, deleted or
// discarded in River, or lost with a crashed process.
type WebhookDeliverSweepWorker struct {
	river.WorkerDefaults[jobargs.WebhookDeliverSweep]
	cfg Config
}

// Timeout bounds one sweep: Config.JobTimeout.
func (w *WebhookDeliverSweepWorker) Timeout(*river.Job[jobargs.WebhookDeliverSweep]) time.Duration {
	return w.cfg.jobTimeout()
}

// Work enqueues the due endpoints' jobs: all of them, so it does not continue.
func (w *WebhookDeliverSweepWorker) Work(ctx context.Context, job *river.Job[jobargs.WebhookDeliverSweep]) error {
	return sweep(ctx, w.cfg, job, noContinuation, func(tx pgx.Tx, st core.Step) (int, error) {
		due, err := queries.WebhookEndpointListWorkAllTenants(ctx, tx, st.Now)
		if err != nil {
			return 0, fmt.Errorf("list webhook endpoints with work due: %w", err)
		}
		for _, e := range due {
			if err := core.WebhookDeliverEnqueue(ctx, tx, st, core.WebhookDeliverEnqueueParams{TenantID: e.TenantID, EndpointIDs: []uuid.UUID{e.ID}}); err != nil {
				return 0, err
			}
		}
		return len(due), nil
	})
}

// send POSTs the delivery's signed payload within Config.WebhookTimeout. It returns the
// response's status (0 when there was none) and nil for a 2xx, an error saying why not
// otherwise.
func (w *WebhookDeliverWorker) send(ctx context.Context, d sql.WebhookDeliveryClaimNextDueRow, at time.Time) (int32, error) {
	secret, err := w.cfg.Box.Open(d.EndpointSecretSealed, webhook.SecretLabel(d.EndpointID))
	if err != nil {
		return 0, fmt.Errorf("open the endpoint's secret: %w", err)
	}
	body, err := json.Marshal(webhook.Payload{Type: d.EventType, Timestamp: d.EventOccurredAt, Data: d.EventData})
	if err != nil {
		return 0, fmt.Errorf("encode payload: %w", err)
	}
	header, err := webhook.Sign(string(secret), d.EventID.String(), at, body)
	if err != nil {
		return 0, err
	}

	ctx, cancel := context.WithTimeout(ctx, w.cfg.WebhookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.EndpointURL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	req.Header = header
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", webhookUserAgent)
	res, err := w.cfg.HTTPClient.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return 0, fmt.Errorf("no response within %s", w.cfg.WebhookTimeout)
		}
		return 0, fmt.Errorf("send: %w", err)
	}
	defer func() { _ = res.Body.Close() }() // read below: closing loses nothing
	excerpt, readErr := io.ReadAll(io.LimitReader(res.Body, webhookResponseExcerpt))
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, webhookResponseDrain)) // only to reuse the connection
	status := int32(res.StatusCode)
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		return status, nil
	}
	if readErr != nil {
		return status, fmt.Errorf("HTTP %d (reading the body: %w)", res.StatusCode, readErr)
	}
	if text := strings.TrimSpace(string(excerpt)); text != "" {
		return status, fmt.Errorf("HTTP %d: %s", res.StatusCode, text)
	}
	return status, fmt.Errorf("HTTP %d", res.StatusCode)
}

// truncateWebhookError makes s storable and short: valid UTF-8 without NUL, at most
// maxWebhookErrorLen bytes.
func truncateWebhookError(s string) string {
	s = strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
	if len(s) <= maxWebhookErrorLen {
		return s
	}
	cut := maxWebhookErrorLen - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// EventRetentionSweepWorker deletes one batch of events older than Config.EventRetention
// with their finished deliveries (EventPurge), a batch (Config.Batches.EventRetention) per
// run; events with a delivery still pending stay. A full batch enqueues the next run (see
// sweep).
type EventRetentionSweepWorker struct {
	river.WorkerDefaults[jobargs.EventRetentionSweep]
	cfg Config
}

// Timeout bounds one sweep: Config.JobTimeout.
func (w *EventRetentionSweepWorker) Timeout(*river.Job[jobargs.EventRetentionSweep]) time.Duration {
	return w.cfg.jobTimeout()
}

// Work deletes old events and completes the job in one transaction.
func (w *EventRetentionSweepWorker) Work(ctx context.Context, job *river.Job[jobargs.EventRetentionSweep]) error {
	batch := w.cfg.batches().EventRetention
	return sweep(ctx, w.cfg, job, batch, func(tx pgx.Tx, st core.Step) (int, error) {
		purged, err := queries.EventPurge(ctx, tx, sql.EventPurgeParams{Cutoff: st.Now.Add(-w.cfg.EventRetention), Now: st.Now, Batch: int32(batch)})
		if err != nil {
			return 0, fmt.Errorf("purge old events: %w", err)
		}
		w.cfg.Log.InfoContext(ctx, "old events deleted", "events", purged.Events, "deliveries", purged.Deliveries)
		return int(purged.Events), nil
	})
}
