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

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/webhook"
	"github.com/tessera/tessera/sql"
)

// WebhookRetrySchedule is how long a failed delivery waits before its next attempt: after
// attempt n fails, the wait is WebhookRetrySchedule[n-1], measured from when attempt n
// started. Twelve waits make jobargs.WebhookDeliverMaxAttempts (13) attempts over 2 days,
// 23 hours and 42.5 minutes (plus the attempts' own time): about three days, after which
// the delivery is dead.
var WebhookRetrySchedule = [jobargs.WebhookDeliverMaxAttempts - 1]time.Duration{
	30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour,
	12 * time.Hour, 12 * time.Hour, 16 * time.Hour, 16 * time.Hour,
}

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
)

// WebhookDeliverWorker delivers one event to one endpoint per job: it POSTs the Standard
// Webhooks payload, signed with the endpoint's secret. A 2xx succeeds the delivery and
// completes the job in one transaction. Any other answer, or none within
// Config.WebhookTimeout, records the failed attempt in its own transaction and fails the
// job, so River retries it on WebhookRetrySchedule; on the last attempt the delivery is dead.
// The request is never sent inside a transaction: no connection is held while an endpoint
// is slow. Each delivery is its own job on the webhooks queue, so a slow or failing
// endpoint delays no other.
//
// It is idempotent: a delivery that is gone (its endpoint deleted) or no longer pending
// (already succeeded or dead) completes the job and sends nothing; one whose endpoint is
// disabled becomes dead without being sent.
type WebhookDeliverWorker struct {
	river.WorkerDefaults[jobargs.WebhookDeliver]
	cfg Config
}

// NextRetry schedules the attempt after job.Attempt failed attempts on
// WebhookRetrySchedule, from when the failed attempt started (River's attempted_at).
func (w *WebhookDeliverWorker) NextRetry(job *river.Job[jobargs.WebhookDeliver]) time.Time {
	attempted := w.cfg.Clock.Now()
	if job.AttemptedAt != nil {
		attempted = *job.AttemptedAt
	}
	n := min(max(job.Attempt, 1), len(WebhookRetrySchedule))
	return attempted.Add(WebhookRetrySchedule[n-1])
}

// Timeout bounds one attempt: the request's own timeout (Config.WebhookTimeout) and
// Config.JobTimeout to record its outcome, which goes ahead even when the job's context is
// cancelled (a shutdown) so no attempt goes unrecorded.
func (w *WebhookDeliverWorker) Timeout(*river.Job[jobargs.WebhookDeliver]) time.Duration {
	return w.cfg.WebhookTimeout + w.cfg.jobTimeout()
}

// Work makes one delivery attempt.
func (w *WebhookDeliverWorker) Work(ctx context.Context, job *river.Job[jobargs.WebhookDeliver]) error {
	args := job.Args
	d, err := queries.WebhookDeliveryGetForSend(ctx, w.cfg.DB, sql.WebhookDeliveryGetForSendParams{TenantID: args.TenantID, ID: args.DeliveryID})
	switch err = core.DBError(err); {
	case errors.Is(err, core.ErrNotFound):
		w.cfg.Log.InfoContext(ctx, "webhook delivery is gone; nothing to send", "delivery_id", args.DeliveryID)
		return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error { return complete(ctx, tx, job) })
	case err != nil:
		return fmt.Errorf("load webhook delivery %s: %w", args.DeliveryID, err)
	case d.State != sql.DeliveryStatePending:
		return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error { return complete(ctx, tx, job) })
	case !d.EndpointEnabled:
		return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error { return w.abandon(ctx, tx, job) })
	}

	attemptedAt := w.cfg.Clock.Now()
	status, attemptErr := w.send(ctx, d, attemptedAt)
	if attemptErr == nil {
		// Recorded even if the job's context ended meanwhile: the endpoint has the event.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.jobTimeout())
		defer cancel()
		return pg.InTx(rctx, w.cfg.DB, func(tx pgx.Tx) error {
			if err := w.record(rctx, tx, job, sql.DeliveryStateSucceeded, attemptedAt, &status, nil); err != nil {
				return err
			}
			return complete(rctx, tx, job)
		})
	}

	state := sql.DeliveryStatePending
	if job.Attempt >= job.MaxAttempts {
		state = sql.DeliveryStateDead
	}
	var statusPtr *int32
	if status != 0 {
		statusPtr = &status
	}
	message := truncateWebhookError(attemptErr.Error())
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.jobTimeout())
	defer cancel()
	err = pg.InTx(rctx, w.cfg.DB, func(tx pgx.Tx) error {
		return w.record(rctx, tx, job, state, attemptedAt, statusPtr, &message)
	})
	if errors.Is(err, errDeliveryNotPending) {
		// Another run finished the delivery meanwhile: this job has nothing left to do.
		return pg.InTx(rctx, w.cfg.DB, func(tx pgx.Tx) error { return complete(rctx, tx, job) })
	}
	if err != nil {
		return errors.Join(fmt.Errorf("deliver webhook %s: %w", args.DeliveryID, attemptErr), err)
	}
	return fmt.Errorf("deliver webhook %s (attempt %d of %d): %w", args.DeliveryID, job.Attempt, job.MaxAttempts, attemptErr)
}

// errDeliveryNotPending means a delivery was no longer pending when an attempt's outcome
// was to be recorded.
var errDeliveryNotPending = errors.New("webhook delivery is no longer pending")

// record records an attempt's outcome and moves the delivery to state, auditing the
// transition when the delivery finished. A delivery that is no longer pending is
// errDeliveryNotPending, except on success, where the job just completes.
func (w *WebhookDeliverWorker) record(ctx context.Context, tx pgx.Tx, job *river.Job[jobargs.WebhookDeliver], state sql.DeliveryState, attemptedAt time.Time, status *int32, message *string) error {
	args := job.Args
	d, err := queries.WebhookDeliveryRecordAttempt(ctx, tx, sql.WebhookDeliveryRecordAttemptParams{
		TenantID: args.TenantID, ID: args.DeliveryID, State: state, AttemptedAt: attemptedAt,
		LastStatus: status, LastError: message, Now: w.cfg.Clock.Now(),
	})
	switch err = core.DBError(err); {
	case errors.Is(err, core.ErrNotFound) && state == sql.DeliveryStateSucceeded:
		return nil
	case errors.Is(err, core.ErrNotFound):
		return errDeliveryNotPending
	case err != nil:
		return fmt.Errorf("record attempt of webhook delivery %s: %w", args.DeliveryID, err)
	case state == sql.DeliveryStatePending:
		return nil
	}
	action := "webhook_delivery.succeed"
	if state == sql.DeliveryStateDead {
		action = "webhook_delivery.die"
	}
	return core.Audit(ctx, tx, w.cfg.Clock.Now(), args.TenantID, jobActor(job.JobRow), core.Change{
		Action: action, SubjectType: "webhook_delivery", SubjectID: args.DeliveryID.String(),
		Details: map[string]any{"attempts": d.Attempts, "last_status": d.LastStatus, "last_error": d.LastError},
	})
}

// abandon makes a pending delivery of a disabled endpoint dead without sending it, audits
// it and completes the job.
func (w *WebhookDeliverWorker) abandon(ctx context.Context, tx pgx.Tx, job *river.Job[jobargs.WebhookDeliver]) error {
	args := job.Args
	const reason = "the endpoint is disabled; not attempted"
	_, err := queries.WebhookDeliveryAbandon(ctx, tx, sql.WebhookDeliveryAbandonParams{
		TenantID: args.TenantID, ID: args.DeliveryID, Reason: reason, Now: w.cfg.Clock.Now(),
	})
	switch err = core.DBError(err); {
	case errors.Is(err, core.ErrNotFound):
		return complete(ctx, tx, job)
	case err != nil:
		return fmt.Errorf("abandon webhook delivery %s: %w", args.DeliveryID, err)
	}
	err = core.Audit(ctx, tx, w.cfg.Clock.Now(), args.TenantID, jobActor(job.JobRow), core.Change{
		Action: "webhook_delivery.die", SubjectType: "webhook_delivery", SubjectID: args.DeliveryID.String(),
		Details: map[string]any{"last_error": reason},
	})
	if err != nil {
		return err
	}
	return complete(ctx, tx, job)
}

// send POSTs the delivery's signed payload within Config.WebhookTimeout. It returns the
// response's status (0 when there was none) and nil for a 2xx, an error saying why not
// otherwise.
func (w *WebhookDeliverWorker) send(ctx context.Context, d sql.WebhookDeliveryGetForSendRow, at time.Time) (int32, error) {
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
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.EndpointUrl, bytes.NewReader(body))
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
	defer res.Body.Close()
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

// eventRetentionBatch is how many events one event.retention_sweep deletes.
const eventRetentionBatch = 5000

// EventRetentionSweepWorker deletes one batch of events older than Config.EventRetention
// with their finished deliveries (EventPurge); events with a delivery still pending stay.
// When the batch was full it enqueues the next sweep in the same transaction.
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
	return pg.InTx(ctx, w.cfg.DB, func(tx pgx.Tx) error {
		purged, err := queries.EventPurge(ctx, tx, sql.EventPurgeParams{Cutoff: w.cfg.Clock.Now().Add(-w.cfg.EventRetention), Batch: eventRetentionBatch})
		if err != nil {
			return fmt.Errorf("purge old events: %w", err)
		}
		w.cfg.Log.InfoContext(ctx, "old events deleted", "events", purged.Events, "deliveries", purged.Deliveries)
		if err := sweepAgainIfFull(ctx, tx, purged.Events, eventRetentionBatch, jobargs.EventRetentionSweep{}); err != nil {
			return err
		}
		return complete(ctx, tx, job)
	})
}
