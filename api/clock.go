package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
	"github.com/riverqueue/river"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/sql"
)

// requestTenant is the tenant a request acts for, with its clock: nil for a live tenant, the
// instant a sandbox tenant's clock stands at.
type requestTenant struct {
	id    uuid.UUID
	clock *time.Time
}

// now is the one place that decides a request's time: the clock of a sandbox tenant the
// request acts for (found with its key by authenticate, or with its tenant by resolveBuyer),
// else the server's clock — a live tenant's requests, and those that name no tenant, run on
// real time.
func (s *Server) now(ctx context.Context) time.Time {
	if t, ok := ctx.Value(tenantKey).(requestTenant); ok && t.clock != nil {
		return *t.clock
	}
	return s.cfg.Clock.Now()
}

// withTenant returns ctx acting for tenant t, whose clock s.now reads.
func withTenant(ctx context.Context, t requestTenant) context.Context {
	return context.WithValue(ctx, tenantKey, t)
}

// resolveBuyer finds, before the handler runs, the tenant a buyer operation's request names
// (its buyerTenant, from its path and body) and the tenant's clock, and puts them in the
// context: the request's time (s.now) and its Idempotency-Key scope follow from it. An
// authenticated request acts for its key's tenant instead. A request that names no tenant
// runs on, and is refused by its handler, as before.
func (s *Server) resolveBuyer(ctx huma.Context, next func(huma.Context)) {
	tenantOf, ok := ctx.Operation().Metadata[metadataBuyerTenant].(buyerTenant)
	if _, admin := principalFrom(ctx.Context()); !ok || admin {
		next(ctx)
		return
	}
	screened, ok := ctx.(*screenedContext)
	if !ok {
		s.writeError(ctx, problem(ctx.Context(), errors.New("resolveBuyer must run after screenBody, which reads the body")))
		return
	}
	tenant, err := tenantOf(ctx, screened.body)
	switch {
	case errors.Is(err, core.ErrNotFound):
		next(ctx)
	case err != nil:
		s.writeError(ctx, problem(ctx.Context(), fmt.Errorf("find the tenant of a buyer request: %w", err)))
	default:
		inner := huma.WithContext(screened.humaContext, withTenant(ctx.Context(), tenant))
		next(&screenedContext{humaContext: inner, body: screened.body})
	}
}

// ClockAdvance is an advance of a sandbox tenant's clock: where it goes, how far it has got
// and what happened on the way.
type ClockAdvance struct {
	ID     uuid.UUID `json:"id"`
	Status string    `json:"status" enum:"running,succeeded" doc:"running: the advance goes on in a job (clock.advance); poll it. succeeded: the clock stands at to."`
	From   time.Time `json:"from" doc:"Where the clock stood when the advance started."`
	To     time.Time `json:"to" doc:"Where the advance takes the clock."`
	Clock  time.Time `json:"clock" doc:"How far the clock has got."`
	// Counts are what fell due on the way.
	Instants            int32      `json:"instants" doc:"The instants the clock stopped at because something fell due there."`
	RenewalsStarted     int32      `json:"renewals_started" doc:"Renewals that opened a cycle with its PayIn."`
	RenewalsPaid        int32      `json:"renewals_paid" doc:"Renewal PayIns paid on the way (at once from credits under auto-pay)."`
	RenewalsFailed      int32      `json:"renewals_failed" doc:"Renewals that could not be quoted and were backed off."`
	SubscriptionsLapsed int32      `json:"subscriptions_lapsed" doc:"Subscriptions that lapsed, unpaid beyond their grace days."`
	LicensesExpired     int32      `json:"licenses_expired"`
	InvoicesExpired     int32      `json:"invoices_expired" doc:"Sandbox invoices that expired unpaid: their PayIns failed with INVOICE_EXPIRED."`
	PayInsPaid          int32      `json:"payins_paid"`
	PayInsFailed        int32      `json:"payins_failed"`
	CreatedAt           time.Time  `json:"created_at" doc:"On the sandbox's clock."`
	FinishedAt          *time.Time `json:"finished_at,omitempty"`
	Details             string     `json:"details" doc:"Where to list what happened: the tenant's events (GET /v1/admin/events) and audit log (GET /v1/admin/audit-log) carry every change, stamped with the sandbox's clock."`
}

func clockAdvanceFrom(a sql.ClockAdvance) ClockAdvance {
	return ClockAdvance{
		ID: a.ID, Status: string(a.Status), From: a.FromAt, To: a.ToAt, Clock: a.ClockAt, Instants: a.Instants,
		RenewalsStarted: a.RenewalsStarted, RenewalsPaid: a.RenewalsPaid, RenewalsFailed: a.RenewalsFailed,
		SubscriptionsLapsed: a.SubscriptionsLapsed, LicensesExpired: a.LicensesExpired, InvoicesExpired: a.InvoicesExpired,
		PayInsPaid: a.PayinsPaid, PayInsFailed: a.PayinsFailed, CreatedAt: a.CreatedAt, FinishedAt: a.FinishedAt,
		Details: "GET /v1/admin/events and GET /v1/admin/audit-log",
	}
}

// ClockAdvanceInput says how far to advance: by a duration, or to an instant.
type ClockAdvanceInput struct {
	Body struct {
		By string     `json:"by,omitempty" maxLength:"64" pattern:"^([0-9]+(y|mo|w|d|h|m|s))+$" example:"30d" doc:"How far to move the clock: whole numbers of y (calendar years), mo (calendar months), w, d (calendar days), h, m and s, largest first: 1y, 30d, 8d12h. Give by or to."`
		To *time.Time `json:"to,omitempty" doc:"The instant to move the clock to (RFC 3339), at or after where it stands. Give by or to."`
	}
}

// ClockAdvanceOutput is an advance, finished (200) or going on in a job (202).
type ClockAdvanceOutput struct {
	Status   int
	Location string `header:"Location" doc:"Where to poll the advance."`
	Body     ClockAdvance
}

// ClockAdvanceIDInput names an advance.
type ClockAdvanceIDInput struct {
	ID uuid.UUID `path:"id"`
}

// SandboxInvoice is an invoice at a sandbox tenant's checkout.
type SandboxInvoice struct {
	ID         string    `json:"id" example:"sbx_0190f0c4a8e17c3a9d2b6e5f4a3b2c1d"`
	PayInID    uuid.UUID `json:"payin_id"`
	Status     string    `json:"status" enum:"New,Settled,Expired,Invalid" doc:"In BTCPay's words, at the sandbox's clock: New takes payments."`
	AmountSats int64     `json:"amount_sats"`
	PaidSats   *int64    `json:"paid_sats,omitempty"`
	ExpiresAt  time.Time `json:"expires_at" doc:"On the sandbox's clock: 15 minutes after the invoice was opened."`
}

func sandboxInvoiceFrom(i core.SandboxInvoice) SandboxInvoice {
	view := SandboxInvoice{ID: i.Invoice.ProviderInvoiceID, PayInID: i.Invoice.PayInID, Status: string(i.Status), AmountSats: i.Invoice.AmountSats, PaidSats: i.Invoice.PaidSats}
	if i.Invoice.ExpiresAt != nil {
		view.ExpiresAt = *i.Invoice.ExpiresAt
	}
	return view
}

// SandboxInvoiceInput names a sandbox invoice.
type SandboxInvoiceInput struct {
	ID string `path:"id" maxLength:"64" example:"sbx_0190f0c4a8e17c3a9d2b6e5f4a3b2c1d"`
}

// SandboxInvoicePayInput pays a sandbox invoice.
type SandboxInvoicePayInput struct {
	ID   string `path:"id" maxLength:"64" example:"sbx_0190f0c4a8e17c3a9d2b6e5f4a3b2c1d"`
	Body *struct {
		Sats int64 `json:"sats,omitempty" minimum:"1" maximum:"2100000000000000" doc:"What the buyer pays; default the invoice's amount. Less fails the PayIn (AMOUNT_MISMATCH, the sats credited), more pays it and credits the surplus."`
	}
}

// SandboxInvoiceOutput is a sandbox invoice.
type SandboxInvoiceOutput struct {
	Body SandboxInvoice
}

func (s *Server) registerClock() {
	huma.Register(s.api, adminOperation(clockAdvanceOperation), s.clockAdvance)
	huma.Register(s.api, adminOperation(clockAdvanceGetOperation), s.clockAdvanceGet)
	huma.Register(s.api, buyerOperation(sandboxInvoiceGetOperation, s.tenantOfSandboxInvoice), s.sandboxInvoiceGet)
	huma.Register(s.api, buyerOperation(sandboxInvoicePayOperation, s.tenantOfSandboxInvoice), s.sandboxInvoicePay)
}

var sandboxTags = []string{"Sandbox"}

var clockAdvanceOperation = huma.Operation{
	OperationID: "clock-advance",
	Method:      http.MethodPost,
	Path:        "/v1/admin/clock/advance",
	Summary:     "Advance a sandbox tenant's clock",
	Description: "Moves the sandbox's clock forward (by a duration or to an instant, never backwards) and runs, in time order, " +
		"everything of the tenant that falls due on the way, each at its own instant: sandbox invoices expire, renewals start " +
		"(paid at once from credits under auto-pay, else invoiced at the sandbox checkout), backed-off renewals retry, unpaid " +
		"subscriptions lapse after their grace days, licences expire, scheduled downgrades apply with their renewal, and webhook " +
		"deliveries due by the clock are sent; as it ends, the imported licences due for a revocation check at the clock are " +
		"checked against their upstream store, in a revocation.check_tenant job. The state reached is the one a live tenant reaches at the same instants with the " +
		"same requests; there is no limit on how far one advance goes. An advance that finishes within the request answers 200 " +
		"with what happened; a longer one answers 202 and goes on in a clock.advance job: poll its Location until status is " +
		"succeeded. One advance of a clock runs at a time. A live tenant's key is refused (sandbox_only).",
	Tags:   sandboxTags,
	Errors: []int{http.StatusConflict, http.StatusUnprocessableEntity},
}

// clockAdvance starts an advance of the key's sandbox tenant's clock and runs it as far as
// one request goes (Config.ClockAdvanceInline), handing the rest to a clock.advance job.
func (s *Server) clockAdvance(ctx context.Context, in *ClockAdvanceInput) (*ClockAdvanceOutput, error) {
	db, st := tx(ctx), s.step(ctx, actor(ctx))
	advance, err := core.ClockAdvanceStart(ctx, db, st, core.ClockAdvanceParams{TenantID: tenantID(ctx), To: in.Body.To, By: in.Body.By})
	if err != nil {
		return nil, problem(ctx, err)
	}
	advance, err = core.ClockAdvanceRun(ctx, db, st, core.ClockAdvanceRunParams{
		TenantID: advance.TenantID, ID: advance.ID, Batch: s.cfg.ClockAdvanceInline, Quotes: core.RenewalQuotes(ctx, s.cfg.Rates),
	})
	if err != nil {
		return nil, problem(ctx, err)
	}
	out := &ClockAdvanceOutput{Status: http.StatusOK, Location: "/v1/admin/clock/advances/" + advance.ID.String(), Body: clockAdvanceFrom(advance)}
	if advance.Status == sql.ClockAdvanceStatusRunning {
		if _, err := st.Jobs.InsertManyTx(ctx, db, []river.InsertManyParams{{Args: jobargs.ClockAdvance{TenantID: advance.TenantID, AdvanceID: advance.ID, Run: 1}}}); err != nil {
			return nil, problem(ctx, fmt.Errorf("enqueue the rest of clock advance %s: %w", advance.ID, err))
		}
		out.Status = http.StatusAccepted
	}
	return out, nil
}

var clockAdvanceGetOperation = huma.Operation{
	OperationID: "clock-advance-get",
	Method:      http.MethodGet,
	Path:        "/v1/admin/clock/advances/{id}",
	Summary:     "Read an advance of the sandbox's clock",
	Description: "Poll an advance that answered 202 until its status is succeeded: its counts grow with every run of its job.",
	Tags:        sandboxTags,
	Errors:      []int{http.StatusNotFound},
}

// clockAdvanceGet reads one advance of the key's tenant's clock.
func (s *Server) clockAdvanceGet(ctx context.Context, in *ClockAdvanceIDInput) (*ClockAdvanceOutput, error) {
	advance, err := s.queries.ClockAdvanceGet(ctx, s.conn(ctx), sql.ClockAdvanceGetParams{TenantID: tenantID(ctx), ID: in.ID})
	if err != nil {
		return nil, problem(ctx, fmt.Errorf("clock advance %s: %w", in.ID, err))
	}
	return &ClockAdvanceOutput{Status: http.StatusOK, Location: "/v1/admin/clock/advances/" + advance.ID.String(), Body: clockAdvanceFrom(advance)}, nil
}

// tenantOfSandboxInvoice finds the sandbox tenant of the invoice a request names, with its
// clock (buyerTenant).
func (s *Server) tenantOfSandboxInvoice(ctx huma.Context, _ []byte) (requestTenant, error) {
	found, err := s.queries.SandboxInvoiceFind(ctx.Context(), s.cfg.DB, ctx.Param("id"))
	if err != nil {
		return requestTenant{}, err
	}
	return requestTenant{id: found.PayInInvoice.TenantID, clock: found.ClockAt}, nil
}

var sandboxInvoiceGetOperation = huma.Operation{
	OperationID: "sandbox-invoice-get",
	Method:      http.MethodGet,
	Path:        "/v1/sandbox/invoices/{id}",
	Summary:     "Read a sandbox invoice (the sandbox checkout)",
	Description: "A sandbox tenant's PayIns are invoiced here, by Tessera, never by a payment provider: the checkout_url of a sandbox PayIn's invoice is this path. Public: the invoice id is the buyer's capability, as a checkout link is.",
	Tags:        sandboxTags,
	Errors:      []int{http.StatusNotFound},
}

// sandboxInvoiceGet reads a sandbox invoice with its status at its tenant's clock.
func (s *Server) sandboxInvoiceGet(ctx context.Context, in *SandboxInvoiceInput) (*SandboxInvoiceOutput, error) {
	invoice, err := core.SandboxInvoiceGet(ctx, s.conn(ctx), in.ID)
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &SandboxInvoiceOutput{Body: sandboxInvoiceFrom(invoice)}, nil
}

var sandboxInvoicePayOperation = huma.Operation{
	OperationID: "sandbox-invoice-pay",
	Method:      http.MethodPost,
	Path:        "/v1/sandbox/invoices/{id}/pay",
	Summary:     "Pay a sandbox invoice",
	Description: "Pays a sandbox invoice as a buyer at a provider's checkout would, at the sandbox's clock, and settles its PayIn at once " +
		"as a settled provider invoice does: PAID with its effect (a renewal renews, a purchase issues its licence), a surplus " +
		"credited, or FAILED with AMOUNT_MISMATCH when less was paid. An invoice that takes no more payments (paid, expired at the " +
		"clock, or its PayIn failed) is refused with sandbox_invoice_closed: retry the PayIn for a new invoice. Public, like a checkout.",
	Tags:   sandboxTags,
	Errors: []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity},
}

// sandboxInvoicePay pays a sandbox invoice and settles its PayIn; the audit log names the
// buyer by the invoice id, the checkout's capability.
func (s *Server) sandboxInvoicePay(ctx context.Context, in *SandboxInvoicePayInput) (*SandboxInvoiceOutput, error) {
	p := core.SandboxInvoicePayParams{ID: in.ID}
	if in.Body != nil {
		p.Sats = in.Body.Sats
	}
	who := core.Actor{Type: core.ActorBuyer, ID: in.ID, RequestID: requestInfoFrom(ctx).id}
	invoice, err := core.SandboxInvoicePay(ctx, tx(ctx), s.step(ctx, who), p)
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &SandboxInvoiceOutput{Body: sandboxInvoiceFrom(invoice)}, nil
}
