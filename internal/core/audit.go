package core

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

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

// Change describes one state change for the audit log.
type Change struct {
	// Action names what happened, as domain.verb: "api_key.create".
	Action string
	// SubjectType and SubjectID name what it happened to.
	SubjectType string
	SubjectID   string
	// Details is any JSON-encodable value worth keeping; nil records {}.
	Details any
}

// Audit appends c to tenantID's audit log in tx, so the entry commits with the change or
// not at all.
func Audit(ctx context.Context, tx sql.DBTX, now time.Time, tenantID uuid.UUID, actor Actor, c Change) error {
	details := []byte("{}")
	if c.Details != nil {
		var err error
		if details, err = json.Marshal(c.Details); err != nil {
			return fmt.Errorf("encode audit details of %s: %w", c.Action, err)
		}
	}
	var requestID *string
	if actor.RequestID != "" {
		requestID = &actor.RequestID
	}
	err := queries.AuditLogAppend(ctx, tx, sql.AuditLogAppendParams{
		TenantID:    tenantID,
		ID:          NewID(),
		Now:         now,
		ActorType:   actor.Type,
		ActorID:     actor.ID,
		Action:      c.Action,
		SubjectType: c.SubjectType,
		SubjectID:   c.SubjectID,
		Details:     details,
		RequestID:   requestID,
	})
	if err != nil {
		return fmt.Errorf("append audit log %s: %w", c.Action, DBError(err))
	}
	return nil
}

// Record audits a change, with data as its details, and emits data's event: the two things
// every state change does.
func Record(ctx context.Context, tx pgx.Tx, st Step, tenantID uuid.UUID, action, subjectType string, subjectID uuid.UUID, data EventData) error {
	err := Audit(ctx, tx, st.Now, tenantID, st.Actor, Change{Action: action, SubjectType: subjectType, SubjectID: subjectID.String(), Details: data})
	if err != nil {
		return err
	}
	return Emit(ctx, tx, st.Jobs, st.Now, tenantID, data)
}
