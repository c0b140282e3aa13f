package core

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/sql"
)

// Actor types, as the audit log records them.
const (
	ActorAPIKey   = "api_key"
	ActorCLI      = "cli"
	ActorBuyer    = "buyer"
	ActorJob      = "job"
	ActorProvider = "provider"
)

// Actor is who made a change: an API key (by id), the CLI (by OS user), a buyer (by
// licence), a job (by kind and id) or a payment provider.
type Actor struct {
	// Type is one of the Actor* constants.
	Type string
	// ID identifies the actor within its type.
	ID string
	// RequestID is the HTTP request id the change came with, if any.
	RequestID string
}

// Change describes one state change: what the audit log records and, through Record, the
// event that announces it.
type Change struct {
	// TenantID is the tenant whose audit log records the change.
	TenantID uuid.UUID
	// Action names what happened, as domain.verb: "api_key.create".
	Action string
	// SubjectType and SubjectID name what it happened to.
	SubjectType string
	SubjectID   string
	// Details is any JSON-encodable value worth keeping; nil records Event, or {}.
	Details any
	// Event is the change's event, which Record emits to the tenant's webhook endpoints.
	Event EventData
}

// Audit appends c to its tenant's audit log in tx, at st.Now and by st.Actor, so the entry
// commits with the change or not at all.
func Audit(ctx context.Context, tx sql.DBTX, st Step, c Change) error {
	entry, err := c.auditEntry(st)
	if err != nil {
		return err
	}
	if err := queries.AuditLogAppend(ctx, tx, entry); err != nil {
		return fmt.Errorf("append audit log %s: %w", c.Action, err)
	}
	return nil
}

// auditEntry is the audit log entry of c, at st.Now and by st.Actor, with a new id.
func (c Change) auditEntry(st Step) (sql.AuditLogAppendParams, error) {
	details, actor := []byte("{}"), st.Actor
	if kept := c.details(); kept != nil {
		var err error
		if details, err = json.Marshal(kept); err != nil {
			return sql.AuditLogAppendParams{}, fmt.Errorf("encode audit details of %s: %w", c.Action, err)
		}
	}
	var requestID *string
	if actor.RequestID != "" {
		requestID = &actor.RequestID
	}
	return sql.AuditLogAppendParams{
		TenantID: c.TenantID, ID: NewID(), Now: st.Now, ActorType: actor.Type, ActorID: actor.ID,
		Action: c.Action, SubjectType: c.SubjectType, SubjectID: c.SubjectID, Details: details, RequestID: requestID,
	}, nil
}

// details is what the audit log keeps of c: its Details, or else its Event.
func (c Change) details() any {
	if c.Details != nil {
		return c.Details
	}
	if c.Event != nil {
		return c.Event
	}
	return nil
}

// Record audits c and emits its Event: the two things every state change does. The audit
// entry, the event and the lookup of the endpoints subscribed to it are one statement
// (EventCreateAudited); the deliveries follow as Emit makes them.
func Record(ctx context.Context, tx pgx.Tx, st Step, c Change) error {
	entry, err := c.auditEntry(st)
	if err != nil {
		return err
	}
	event, err := newEvent(Event{TenantID: c.TenantID, Data: c.Event})
	if err != nil {
		return err
	}
	endpoints, err := queries.EventCreateAudited(ctx, tx, sql.EventCreateAuditedParams{
		TenantID: c.TenantID, AuditID: entry.ID, Now: st.Now, ActorType: entry.ActorType, ActorID: entry.ActorID,
		Action: entry.Action, SubjectType: entry.SubjectType, SubjectID: entry.SubjectID, Details: entry.Details,
		RequestID: entry.RequestID, EventID: event.ID, Type: event.Type, Data: event.Data,
	})
	if err != nil {
		return fmt.Errorf("record %s with event %s: %w", c.Action, event.Type, err)
	}
	return deliver(ctx, tx, st, event, endpoints)
}
