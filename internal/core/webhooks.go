package core

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/secrets"
	"github.com/tessera/tessera/internal/webhook"
	"github.com/tessera/tessera/sql"
)

// maxWebhookURLLen is the longest endpoint URL (webhook_endpoints' check).
const maxWebhookURLLen = 2000

// WebhookMaxEndpointsDefault is how many webhook endpoints a tenant may have unless
// configured otherwise (TESSERA_WEBHOOK_MAX_ENDPOINTS).
const WebhookMaxEndpointsDefault = 20

// WebhookEndpointCreate creates an enabled endpoint of tenantID that receives eventTypes at
// rawURL, with a new secret sealed by box, and audits it. The returned secret is shown
// once; it can be rotated but not read back through the API. A URL that is not absolute
// http(s), and an empty or unknown event type list, are ErrInvalid; a tenant that already
// has maxEndpoints endpoints (enabled or not) is ErrWebhookEndpointLimit (an ErrConflict).
func WebhookEndpointCreate(ctx context.Context, tx sql.DBTX, box *secrets.Box, now time.Time, actor Actor, tenantID uuid.UUID, maxEndpoints int, rawURL string, eventTypes []string) (sql.WebhookEndpoint, string, error) {
	if err := validateWebhookURL(rawURL); err != nil {
		return sql.WebhookEndpoint{}, "", err
	}
	eventTypes, err := validateEventTypes(eventTypes)
	if err != nil {
		return sql.WebhookEndpoint{}, "", err
	}
	if _, err := queries.WebhookEndpointLockTenant(ctx, tx, tenantID); err != nil {
		return sql.WebhookEndpoint{}, "", fmt.Errorf("create webhook endpoint: tenant %s: %w", tenantID, DBError(err))
	}
	id := NewID()
	secret := webhook.NewSecret()
	endpoint, err := queries.WebhookEndpointCreate(ctx, tx, sql.WebhookEndpointCreateParams{
		TenantID: tenantID, ID: id, URL: rawURL, EventTypes: eventTypes, Enabled: true,
		SecretSealed: box.Seal([]byte(secret), webhook.SecretLabel(id)), Now: now, MaxEndpoints: int32(min(maxEndpoints, math.MaxInt32)),
	})
	switch err = DBError(err); {
	case errors.Is(err, ErrNotFound):
		return sql.WebhookEndpoint{}, "", fmt.Errorf("%w: the tenant has %d webhook endpoints, the most allowed (TESSERA_WEBHOOK_MAX_ENDPOINTS); delete one first", ErrWebhookEndpointLimit, maxEndpoints)
	case err != nil:
		return sql.WebhookEndpoint{}, "", fmt.Errorf("create webhook endpoint: %w", err)
	}
	err = Audit(ctx, tx, Step{Now: now, Actor: actor}, Change{TenantID: tenantID,
		Action: "webhook_endpoint.create", SubjectType: "webhook_endpoint", SubjectID: id.String(),
		Details: map[string]any{"url": rawURL, "event_types": eventTypes},
	})
	return endpoint, secret, err
}

// WebhookEndpointChange is what an update changes; nil fields keep their value.
type WebhookEndpointChange struct {
	// URL is the new absolute http(s) URL.
	URL *string
	// EventTypes is the new non-empty list of subscribed types (of EventTypes).
	EventTypes []string
	// Enabled turns deliveries on or off. Deliveries of a disabled endpoint that are still
	// pending become dead without being attempted (its webhook.deliver job, enqueued by the
	// sweep, abandons them); an admin can retry them once it is enabled again.
	Enabled *bool
}

// WebhookEndpointUpdate applies change to one of tenantID's endpoints and audits it. An
// unknown endpoint is ErrNotFound; an invalid URL or event type list is ErrInvalid.
func WebhookEndpointUpdate(ctx context.Context, tx sql.DBTX, now time.Time, actor Actor, tenantID, id uuid.UUID, change WebhookEndpointChange) (sql.WebhookEndpoint, error) {
	details := map[string]any{}
	if change.URL != nil {
		if err := validateWebhookURL(*change.URL); err != nil {
			return sql.WebhookEndpoint{}, err
		}
		details["url"] = *change.URL
	}
	if change.EventTypes != nil {
		var err error
		if change.EventTypes, err = validateEventTypes(change.EventTypes); err != nil {
			return sql.WebhookEndpoint{}, err
		}
		details["event_types"] = change.EventTypes
	}
	if change.Enabled != nil {
		details["enabled"] = *change.Enabled
	}
	endpoint, err := queries.WebhookEndpointUpdate(ctx, tx, sql.WebhookEndpointUpdateParams{
		TenantID: tenantID, ID: id, URL: change.URL, EventTypes: change.EventTypes, Enabled: change.Enabled, Now: now,
	})
	if err != nil {
		return sql.WebhookEndpoint{}, fmt.Errorf("update webhook endpoint %s: %w", id, DBError(err))
	}
	err = Audit(ctx, tx, Step{Now: now, Actor: actor}, Change{TenantID: tenantID,
		Action: "webhook_endpoint.update", SubjectType: "webhook_endpoint", SubjectID: id.String(), Details: details,
	})
	return endpoint, err
}

// WebhookEndpointRotateSecret gives one of tenantID's endpoints a new secret, sealed by box,
// and audits it; attempts from now on, retries included, are signed with it. The returned
// secret is shown once. An unknown endpoint is ErrNotFound.
func WebhookEndpointRotateSecret(ctx context.Context, tx sql.DBTX, box *secrets.Box, now time.Time, actor Actor, tenantID, id uuid.UUID) (sql.WebhookEndpoint, string, error) {
	secret := webhook.NewSecret()
	endpoint, err := queries.WebhookEndpointRotateSecret(ctx, tx, sql.WebhookEndpointRotateSecretParams{
		TenantID: tenantID, ID: id, SecretSealed: box.Seal([]byte(secret), webhook.SecretLabel(id)), Now: now,
	})
	if err != nil {
		return sql.WebhookEndpoint{}, "", fmt.Errorf("rotate secret of webhook endpoint %s: %w", id, DBError(err))
	}
	err = Audit(ctx, tx, Step{Now: now, Actor: actor}, Change{TenantID: tenantID,
		Action: "webhook_endpoint.rotate_secret", SubjectType: "webhook_endpoint", SubjectID: id.String(),
	})
	return endpoint, secret, err
}

// WebhookEndpointDelete deletes one of tenantID's endpoints with its deliveries and audits
// it; its webhook.deliver job, if queued, then finds nothing to do. An unknown endpoint is ErrNotFound.
func WebhookEndpointDelete(ctx context.Context, tx sql.DBTX, now time.Time, actor Actor, tenantID, id uuid.UUID) (sql.WebhookEndpointDeleteRow, error) {
	deleted, err := queries.WebhookEndpointDelete(ctx, tx, sql.WebhookEndpointDeleteParams{TenantID: tenantID, ID: id})
	if err != nil {
		return sql.WebhookEndpointDeleteRow{}, fmt.Errorf("delete webhook endpoint %s: %w", id, DBError(err))
	}
	err = Audit(ctx, tx, Step{Now: now, Actor: actor}, Change{TenantID: tenantID,
		Action: "webhook_endpoint.delete", SubjectType: "webhook_endpoint", SubjectID: id.String(),
		Details: map[string]any{"url": deleted.URL, "deliveries_deleted": deleted.DeliveriesDeleted},
	})
	return deleted, err
}

// WebhookDeliveryRetry makes one of tenantID's dead or pending deliveries due now with a
// fresh attempt budget (the whole retry schedule), enqueues its endpoint's webhook.deliver
// job in tx (a unique insert: skipped when one is live, which then sends it), and audits
// it. An unknown delivery is ErrNotFound; a succeeded delivery is ErrWebhookDeliverySucceeded
// and one whose endpoint is disabled ErrWebhookEndpointDisabled (both ErrConflict).
func WebhookDeliveryRetry(ctx context.Context, tx pgx.Tx, jobs JobInserter, now time.Time, actor Actor, tenantID, id uuid.UUID) (sql.WebhookDelivery, error) {
	delivery, err := queries.WebhookDeliveryRetry(ctx, tx, sql.WebhookDeliveryRetryParams{TenantID: tenantID, ID: id, Now: now})
	if err != nil {
		if err = DBError(err); !errors.Is(err, ErrNotFound) {
			return sql.WebhookDelivery{}, fmt.Errorf("retry webhook delivery %s: %w", id, err)
		}
		current, getErr := queries.WebhookDeliveryGet(ctx, tx, sql.WebhookDeliveryGetParams{TenantID: tenantID, ID: id})
		switch getErr = DBError(getErr); {
		case errors.Is(getErr, ErrNotFound):
			return sql.WebhookDelivery{}, fmt.Errorf("%w: webhook delivery %s", ErrNotFound, id)
		case getErr != nil:
			return sql.WebhookDelivery{}, fmt.Errorf("retry webhook delivery %s: %w", id, getErr)
		case current.State == sql.DeliveryStateSucceeded:
			return sql.WebhookDelivery{}, fmt.Errorf("%w: webhook delivery %s already succeeded; only dead or pending deliveries can be retried", ErrWebhookDeliverySucceeded, id)
		}
		return sql.WebhookDelivery{}, fmt.Errorf("%w: the endpoint of webhook delivery %s is disabled; enable it before retrying", ErrWebhookEndpointDisabled, id)
	}
	if err := EnqueueWebhookDeliver(ctx, tx, jobs, tenantID, delivery.EndpointID); err != nil {
		return sql.WebhookDelivery{}, fmt.Errorf("enqueue retry of webhook delivery %s: %w", id, err)
	}
	err = Audit(ctx, tx, Step{Now: now, Actor: actor}, Change{TenantID: tenantID,
		Action: "webhook_delivery.retry", SubjectType: "webhook_delivery", SubjectID: id.String(),
		Details: map[string]any{"endpoint_id": delivery.EndpointID, "event_id": delivery.EventID, "attempts": delivery.Attempts},
	})
	return delivery, err
}

// EnqueueWebhookDeliver enqueues in tx the webhook.deliver job of each of tenantID's
// endpointIDs. The inserts are unique: an endpoint whose job is live keeps it, and that job
// sends the new work (see WebhookEndpointLockForDeliver).
func EnqueueWebhookDeliver(ctx context.Context, tx pgx.Tx, jobs JobInserter, tenantID uuid.UUID, endpointIDs ...uuid.UUID) error {
	params := make([]river.InsertManyParams, len(endpointIDs))
	for i, id := range endpointIDs {
		params[i] = river.InsertManyParams{Args: jobargs.WebhookDeliver{TenantID: tenantID, EndpointID: id}}
	}
	if _, err := jobs.InsertManyTx(ctx, tx, params); err != nil {
		return fmt.Errorf("enqueue webhook.deliver: %w", err)
	}
	return nil
}

// validateWebhookURL accepts an absolute http or https URL with a host, of at most 2000
// bytes.
func validateWebhookURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case len(raw) > maxWebhookURLLen:
		return fmt.Errorf("%w: the url is longer than %d bytes", ErrInvalid, maxWebhookURLLen)
	case err != nil:
		return fmt.Errorf("%w: the url does not parse: %s", ErrInvalid, errors.Unwrap(err))
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%w: the url must start with http:// or https://", ErrInvalid)
	case u.Host == "" || u.Hostname() == "":
		return fmt.Errorf("%w: the url has no host", ErrInvalid)
	}
	return nil
}

// validateEventTypes returns types sorted without duplicates, or ErrInvalid when it is empty
// or names a type that is not one of EventTypes.
func validateEventTypes(types []string) ([]string, error) {
	if len(types) == 0 {
		return nil, fmt.Errorf("%w: event_types must name at least one event type", ErrInvalid)
	}
	for _, t := range types {
		if !IsEventType(t) {
			return nil, fmt.Errorf("%w: unknown event type %q", ErrInvalid, t)
		}
	}
	types = slices.Clone(types)
	slices.Sort(types)
	return slices.Compact(types), nil
}
