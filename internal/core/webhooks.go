package core

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/webhook"
	"github.com/tessera/tessera/sql"
)

// maxWebhookURLLen is the longest endpoint URL (webhook_endpoints' check).
const maxWebhookURLLen = 2000

// WebhookMaxEndpointsDefault is how many webhook endpoints a tenant may have unless
// configured otherwise (TESSERA_WEBHOOK_MAX_ENDPOINTS).
const WebhookMaxEndpointsDefault = 20

// WebhookEndpointCreateParams is a new webhook endpoint of TenantID.
type WebhookEndpointCreateParams struct {
	TenantID uuid.UUID
	// MaxEndpoints is how many endpoints the tenant may have (TESSERA_WEBHOOK_MAX_ENDPOINTS).
	MaxEndpoints int
	// URL is where events are POSTed: an absolute http(s) URL.
	URL string
	// EventTypes are the subscribed types: at least one, each of EventTypes.
	EventTypes []string
}

// WebhookEndpointCreate creates an enabled endpoint of p.TenantID that receives p.EventTypes
// at p.URL, with a new secret sealed by st.Box, and audits it. The returned secret is shown
// once; it can be rotated but not read back through the API. A URL that is not absolute
// http(s), and an empty or unknown event type list, are ErrInvalid; a tenant that already
// has p.MaxEndpoints endpoints (enabled or not) is ErrWebhookEndpointLimit (an ErrConflict).
func WebhookEndpointCreate(ctx context.Context, tx pgx.Tx, st Step, p WebhookEndpointCreateParams) (sql.WebhookEndpoint, string, error) {
	if err := validateWebhookURL(p.URL); err != nil {
		return sql.WebhookEndpoint{}, "", err
	}
	eventTypes, err := validateEventTypes(p.EventTypes)
	if err != nil {
		return sql.WebhookEndpoint{}, "", err
	}
	if _, err := queries.WebhookEndpointLockTenant(ctx, tx, p.TenantID); err != nil {
		return sql.WebhookEndpoint{}, "", fmt.Errorf("create webhook endpoint: tenant %s: %w", p.TenantID, err)
	}
	id := NewID()
	secret := webhook.NewSecret()
	endpoint, err := queries.WebhookEndpointCreate(ctx, tx, sql.WebhookEndpointCreateParams{
		TenantID: p.TenantID, ID: id, URL: p.URL, EventTypes: eventTypes, Enabled: true,
		SecretSealed: st.Box.Seal([]byte(secret), webhook.SecretLabel(id)), Now: st.Now, MaxEndpoints: int32(min(p.MaxEndpoints, math.MaxInt32)),
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return sql.WebhookEndpoint{}, "", fmt.Errorf("%w: the tenant has %d webhook endpoints, the most allowed (TESSERA_WEBHOOK_MAX_ENDPOINTS); delete one first", ErrWebhookEndpointLimit, p.MaxEndpoints)
	case err != nil:
		return sql.WebhookEndpoint{}, "", fmt.Errorf("create webhook endpoint: %w", err)
	}
	err = Audit(ctx, tx, st, Change{TenantID: p.TenantID,
		Action: "webhook_endpoint.create", SubjectType: "webhook_endpoint", SubjectID: id.String(),
		Details: map[string]any{"url": p.URL, "event_types": eventTypes},
	})
	return endpoint, secret, err
}

// WebhookEndpointUpdateParams changes endpoint ID of TenantID; nil fields keep their value.
type WebhookEndpointUpdateParams struct {
	TenantID uuid.UUID
	ID       uuid.UUID
	// URL is the new absolute http(s) URL.
	URL *string
	// EventTypes is the new non-empty list of subscribed types (of EventTypes).
	EventTypes []string
	// Enabled turns deliveries on or off. Deliveries of a disabled endpoint that are still
	// pending become dead without being attempted (its webhook.deliver job, enqueued by the
	// sweep, abandons them); an admin can retry them once it is enabled again.
	Enabled *bool
}

// WebhookEndpointUpdate changes one of p.TenantID's endpoints and audits it. An unknown
// endpoint is ErrNotFound; an invalid URL or event type list is ErrInvalid.
func WebhookEndpointUpdate(ctx context.Context, tx pgx.Tx, st Step, p WebhookEndpointUpdateParams) (sql.WebhookEndpoint, error) {
	details := map[string]any{}
	if p.URL != nil {
		if err := validateWebhookURL(*p.URL); err != nil {
			return sql.WebhookEndpoint{}, err
		}
		details["url"] = *p.URL
	}
	if p.EventTypes != nil {
		var err error
		if p.EventTypes, err = validateEventTypes(p.EventTypes); err != nil {
			return sql.WebhookEndpoint{}, err
		}
		details["event_types"] = p.EventTypes
	}
	if p.Enabled != nil {
		details["enabled"] = *p.Enabled
	}
	endpoint, err := queries.WebhookEndpointUpdate(ctx, tx, sql.WebhookEndpointUpdateParams{
		TenantID: p.TenantID, ID: p.ID, URL: p.URL, EventTypes: p.EventTypes, Enabled: p.Enabled, Now: st.Now,
	})
	if err != nil {
		return sql.WebhookEndpoint{}, fmt.Errorf("update webhook endpoint %s: %w", p.ID, err)
	}
	err = Audit(ctx, tx, st, Change{TenantID: p.TenantID,
		Action: "webhook_endpoint.update", SubjectType: "webhook_endpoint", SubjectID: p.ID.String(), Details: details,
	})
	return endpoint, err
}

// WebhookEndpointRotateSecretParams names the endpoint whose secret is rotated.
type WebhookEndpointRotateSecretParams struct {
	TenantID uuid.UUID
	ID       uuid.UUID
}

// WebhookEndpointRotateSecret gives one of p.TenantID's endpoints a new secret, sealed by
// st.Box, and audits it; attempts from now on, retries included, are signed with it. The
// returned secret is shown once. An unknown endpoint is ErrNotFound.
func WebhookEndpointRotateSecret(ctx context.Context, tx pgx.Tx, st Step, p WebhookEndpointRotateSecretParams) (sql.WebhookEndpoint, string, error) {
	secret := webhook.NewSecret()
	endpoint, err := queries.WebhookEndpointRotateSecret(ctx, tx, sql.WebhookEndpointRotateSecretParams{
		TenantID: p.TenantID, ID: p.ID, SecretSealed: st.Box.Seal([]byte(secret), webhook.SecretLabel(p.ID)), Now: st.Now,
	})
	if err != nil {
		return sql.WebhookEndpoint{}, "", fmt.Errorf("rotate secret of webhook endpoint %s: %w", p.ID, err)
	}
	err = Audit(ctx, tx, st, Change{TenantID: p.TenantID,
		Action: "webhook_endpoint.rotate_secret", SubjectType: "webhook_endpoint", SubjectID: p.ID.String(),
	})
	return endpoint, secret, err
}

// WebhookEndpointDeleteParams names the endpoint to delete.
type WebhookEndpointDeleteParams struct {
	TenantID uuid.UUID
	ID       uuid.UUID
}

// WebhookEndpointDelete deletes one of p.TenantID's endpoints with its deliveries and audits
// it; its webhook.deliver job, if queued, then finds nothing to do. An unknown endpoint is ErrNotFound.
func WebhookEndpointDelete(ctx context.Context, tx pgx.Tx, st Step, p WebhookEndpointDeleteParams) (sql.WebhookEndpointDeleteRow, error) {
	deleted, err := queries.WebhookEndpointDelete(ctx, tx, sql.WebhookEndpointDeleteParams{TenantID: p.TenantID, ID: p.ID})
	if err != nil {
		return sql.WebhookEndpointDeleteRow{}, fmt.Errorf("delete webhook endpoint %s: %w", p.ID, err)
	}
	err = Audit(ctx, tx, st, Change{TenantID: p.TenantID,
		Action: "webhook_endpoint.delete", SubjectType: "webhook_endpoint", SubjectID: p.ID.String(),
		Details: map[string]any{"url": deleted.URL, "deliveries_deleted": deleted.DeliveriesDeleted},
	})
	return deleted, err
}

// WebhookDeliveryRetryParams names the delivery to retry.
type WebhookDeliveryRetryParams struct {
	TenantID uuid.UUID
	ID       uuid.UUID
}

// WebhookDeliveryRetry makes one of p.TenantID's dead or pending deliveries due now with a
// fresh attempt budget (the whole retry schedule), enqueues its endpoint's webhook.deliver
// job in tx (a unique insert: skipped when one is live, which then sends it), and audits
// it. An unknown delivery is ErrNotFound; a succeeded delivery is ErrWebhookDeliverySucceeded
// and one whose endpoint is disabled ErrWebhookEndpointDisabled (both ErrConflict).
func WebhookDeliveryRetry(ctx context.Context, tx pgx.Tx, st Step, p WebhookDeliveryRetryParams) (sql.WebhookDelivery, error) {
	delivery, err := queries.WebhookDeliveryRetry(ctx, tx, sql.WebhookDeliveryRetryParams{TenantID: p.TenantID, ID: p.ID, Now: st.Now})
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			return sql.WebhookDelivery{}, fmt.Errorf("retry webhook delivery %s: %w", p.ID, err)
		}
		current, getErr := queries.WebhookDeliveryGet(ctx, tx, sql.WebhookDeliveryGetParams{TenantID: p.TenantID, ID: p.ID})
		switch {
		case errors.Is(getErr, ErrNotFound):
			return sql.WebhookDelivery{}, fmt.Errorf("%w: webhook delivery %s", ErrNotFound, p.ID)
		case getErr != nil:
			return sql.WebhookDelivery{}, fmt.Errorf("retry webhook delivery %s: %w", p.ID, getErr)
		case current.State == sql.DeliveryStateSucceeded:
			return sql.WebhookDelivery{}, fmt.Errorf("%w: webhook delivery %s already succeeded; only dead or pending deliveries can be retried", ErrWebhookDeliverySucceeded, p.ID)
		}
		return sql.WebhookDelivery{}, fmt.Errorf("%w: the endpoint of webhook delivery %s is disabled; enable it before retrying", ErrWebhookEndpointDisabled, p.ID)
	}
	err = WebhookDeliverEnqueue(ctx, tx, st, WebhookDeliverEnqueueParams{TenantID: p.TenantID, EndpointIDs: []uuid.UUID{delivery.EndpointID}})
	if err != nil {
		return sql.WebhookDelivery{}, fmt.Errorf("enqueue retry of webhook delivery %s: %w", p.ID, err)
	}
	err = Audit(ctx, tx, st, Change{TenantID: p.TenantID,
		Action: "webhook_delivery.retry", SubjectType: "webhook_delivery", SubjectID: p.ID.String(),
		Details: map[string]any{"endpoint_id": delivery.EndpointID, "event_id": delivery.EventID, "attempts": delivery.Attempts},
	})
	return delivery, err
}

// WebhookDeliverEnqueueParams names the endpoints of TenantID whose webhook.deliver jobs
// are enqueued.
type WebhookDeliverEnqueueParams struct {
	TenantID    uuid.UUID
	EndpointIDs []uuid.UUID
}

// WebhookDeliverEnqueue enqueues in tx, through st.Jobs, the webhook.deliver job of each of
// p's endpoints. The inserts are unique: an endpoint whose job is live keeps it, and that
// job sends the new work (see WebhookEndpointLockForDeliver).
func WebhookDeliverEnqueue(ctx context.Context, tx pgx.Tx, st Step, p WebhookDeliverEnqueueParams) error {
	params := make([]river.InsertManyParams, len(p.EndpointIDs))
	for i, id := range p.EndpointIDs {
		params[i] = river.InsertManyParams{Args: jobargs.WebhookDeliver{TenantID: p.TenantID, EndpointID: id}}
	}
	if _, err := st.Jobs.InsertManyTx(ctx, tx, params); err != nil {
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
		return fmt.Errorf("%w: the url does not parse: %w", ErrInvalid, errors.Unwrap(err))
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
