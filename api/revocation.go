package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/sql"
)

// RevocationQueueItem is an eligible imported licence with its risk score and each term of
// it, as the check loop sees it.
type RevocationQueueItem struct {
	LicenseID            uuid.UUID  `json:"license_id"`
	ExternalLicenseID    string     `json:"external_license_id"`
	StoreID              uuid.UUID  `json:"store_id"`
	CustomerID           uuid.UUID  `json:"customer_id" doc:"The owner."`
	AcquiredAt           time.Time  `json:"acquired_at"`
	LastCheckedAt        *time.Time `json:"last_checked_at" doc:"The last answered check; null when never checked."`
	TermRevokedCount     float64    `json:"term_revoked_count" doc:"+w·ln(1 + the owner's licences gone upstream)."`
	TermRecentRevocation float64    `json:"term_recent_revocation" doc:"+w / (1 + days since the owner's last revocation); 0 without one."`
	TermRevokedHours     float64    `json:"term_revoked_hours" doc:"+w·ln(1 + hours the owner held licences before they went)."`
	TermOwnerHours       float64    `json:"term_owner_hours" doc:"−w·ln(1 + hours of the owner's other unrevoked licences)."`
	TermLicenseAge       float64    `json:"term_license_age" doc:"−w·ln(1 + hours since this licence was acquired)."`
	TermStaleness        float64    `json:"term_staleness" doc:"+w·hours since this licence's last check (or import)."`
	Score                float64    `json:"score" doc:"The sum of the terms; highest is checked first, ties by licence id."`
}

func revocationQueueItemFrom(r sql.RevocationQueueRow) RevocationQueueItem {
	return RevocationQueueItem{
		LicenseID: r.LicenseID, ExternalLicenseID: r.ExternalLicenseID, StoreID: r.StoreID, CustomerID: r.CustomerID,
		AcquiredAt: r.AcquiredAt, LastCheckedAt: r.LastCheckedAt, TermRevokedCount: r.TermRevokedCount,
		TermRecentRevocation: r.TermRecentRevocation, TermRevokedHours: r.TermRevokedHours, TermOwnerHours: r.TermOwnerHours,
		TermLicenseAge: r.TermLicenseAge, TermStaleness: r.TermStaleness, Score: r.Score,
	}
}

// RevocationQueueInput asks for the head of the queue.
type RevocationQueueInput struct {
	Limit int `query:"limit" minimum:"1" maximum:"200" default:"20" doc:"How many licences."`
}

// RevocationQueueOutput is the head of the tenant's revocation queue.
type RevocationQueueOutput struct {
	Body struct {
		Items []RevocationQueueItem `json:"items" nullable:"false"`
	}
}

// UpstreamCheck is one check of an imported licence.
type UpstreamCheck struct {
	ID             uuid.UUID `json:"id"`
	StoreID        uuid.UUID `json:"store_id"`
	CheckedAt      time.Time `json:"checked_at"`
	Outcome        string    `json:"outcome" enum:"exists,gone,error"`
	UpstreamStatus *int32    `json:"upstream_status" doc:"The store's HTTP status; null when it did not answer."`
	Error          *string   `json:"error" doc:"What went wrong, for error outcomes."`
}

func upstreamCheckFrom(c sql.UpstreamLicenseCheck) UpstreamCheck {
	return UpstreamCheck{ID: c.ID, StoreID: c.StoreID, CheckedAt: c.CheckedAt, Outcome: string(c.Outcome),
		UpstreamStatus: c.UpstreamStatus, Error: c.Error}
}

// LicenseCheckListInput pages through a licence's checks.
type LicenseCheckListInput struct {
	PageParams
	ID uuid.UUID `path:"id"`
}

// LicenseCheckListOutput is a page of checks.
type LicenseCheckListOutput struct {
	Body Page[UpstreamCheck]
}

func (s *Server) registerRevocation() {
	huma.Register(s.api, adminOperation(revocationQueueOperation), s.revocationQueue)
	huma.Register(s.api, adminOperation(licenseCheckListOperation), s.licenseCheckList)
}

var revocationTags = []string{"Revocation"}

var revocationQueueOperation = huma.Operation{
	OperationID: "revocation-queue",
	Method:      http.MethodGet,
	Path:        "/v1/admin/revocation/queue",
	Summary:     "The next imported licences the revocation check loop will check",
	Description: "Eligible licences (not known gone, store enabled, a webhook endpoint subscribed to license.upstream_revoked, " +
		"not checked within the minimum interval, not held back after an error) by risk score, highest first, with each term: " +
		"the same query the check loop picks with. Empty while the tenant has no such endpoint.",
	Tags: revocationTags,
}

// revocationQueue reads the head of the tenant's revocation queue, scored as the check loop
// scores it (upstream.Schedule.Queue: JIT off, as for the pick).
func (s *Server) revocationQueue(ctx context.Context, in *RevocationQueueInput) (*RevocationQueueOutput, error) {
	limit := in.Limit
	if limit <= 0 || limit > 200 {
		limit = 20
	}
	tenant := tenantID(ctx)
	rows, err := s.cfg.Revocation.OrDefault().Queue(ctx, s.cfg.DB, s.now(ctx), &tenant, int32(limit))
	if err != nil {
		return nil, problem(ctx, err)
	}
	out := &RevocationQueueOutput{}
	out.Body.Items = make([]RevocationQueueItem, len(rows))
	for i, r := range rows {
		out.Body.Items[i] = revocationQueueItemFrom(r)
	}
	return out, nil
}

var licenseCheckListOperation = huma.Operation{
	OperationID: "license-check-list",
	Method:      http.MethodGet,
	Path:        "/v1/admin/licenses/{id}/checks",
	Summary:     "List an imported licence's upstream checks, newest first",
	Tags:        revocationTags,
}

// licenseCheckList pages through an imported licence's upstream checks.
func (s *Server) licenseCheckList(ctx context.Context, in *LicenseCheckListInput) (*LicenseCheckListOutput, error) {
	after, fetch := in.cursor()
	rows, err := s.queries.UpstreamCheckList(ctx, s.conn(ctx), sql.UpstreamCheckListParams{
		TenantID: tenantID(ctx), LicenseID: in.ID, After: after, RowLimit: fetch,
	})
	if err != nil {
		return nil, problem(ctx, fmt.Errorf("list checks of licence %s: %w", in.ID, err))
	}
	return &LicenseCheckListOutput{Body: page(rows, fetch, upstreamCheckFrom, func(c sql.UpstreamLicenseCheck) uuid.UUID { return c.ID })}, nil
}
