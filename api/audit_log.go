package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/sql"
)

// AuditEntry is one recorded state change.
type AuditEntry struct {
	ID          uuid.UUID      `json:"id"`
	OccurredAt  time.Time      `json:"occurred_at"`
	ActorType   string         `json:"actor_type" enum:"api_key,cli,buyer,job,provider"`
	ActorID     string         `json:"actor_id"`
	Action      string         `json:"action" example:"api_key.create"`
	SubjectType string         `json:"subject_type" example:"api_key"`
	SubjectID   string         `json:"subject_id"`
	Details     map[string]any `json:"details"`
	RequestID   *string        `json:"request_id,omitempty"`
}

func auditEntryFrom(r sql.AuditLog) (AuditEntry, error) {
	entry := AuditEntry{
		ID: r.ID, OccurredAt: r.OccurredAt, ActorType: r.ActorType, ActorID: r.ActorID, Action: r.Action,
		SubjectType: r.SubjectType, SubjectID: r.SubjectID, RequestID: r.RequestID,
	}
	if err := json.Unmarshal(r.Details, &entry.Details); err != nil {
		return AuditEntry{}, fmt.Errorf("decode audit entry %s: %w", r.ID, err)
	}
	return entry, nil
}

// AuditLogListOutput is a page of the audit log.
type AuditLogListOutput struct {
	Body Page[AuditEntry]
}

func (s *Server) registerAuditLog() {
	huma.Register(s.api, adminOperation(auditLogListOperation), s.auditLogList)
}

var auditLogListOperation = huma.Operation{
	OperationID: "audit-log-list",
	Method:      http.MethodGet,
	Path:        "/v1/admin/audit-log",
	Summary:     "List the tenant's audit log, newest first",
	Tags:        []string{"Audit log"},
}

// auditLogList reads a page of the caller's tenant's audit log.
func (s *Server) auditLogList(ctx context.Context, in *PageParams) (*AuditLogListOutput, error) {
	after, fetch := in.cursor()
	rows, err := s.queries.AuditLogList(ctx, s.conn(ctx), sql.AuditLogListParams{TenantID: tenantID(ctx), After: after, RowLimit: fetch})
	if err != nil {
		return nil, problem(ctx, err)
	}
	entries := make([]AuditEntry, len(rows))
	for i, r := range rows {
		if entries[i], err = auditEntryFrom(r); err != nil {
			return nil, problem(ctx, err)
		}
	}
	return &AuditLogListOutput{Body: page(entries, fetch, func(e AuditEntry) AuditEntry { return e }, func(e AuditEntry) uuid.UUID { return e.ID })}, nil
}
