package api

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tessera/tessera/internal/core"
)

// ProblemCode is the stable, machine-readable reason of an error answer: the `code` member
// of its problem+json body, and the last segment of its `type` ("/problems/" + code). A
// client branches on it; the title and detail are for people and may change. Problems lists
// every code; the OpenAPI document publishes them as the enum of `code`, and the README's
// table is generated from the same list (TestReadmeProblems).
type ProblemCode string

// The problem codes Tessera answers, with their status. See Problems for what each means.
const (
	CodeBadRequest             ProblemCode = "bad_request"
	CodeIdempotencyKeyInvalid  ProblemCode = "idempotency_key_invalid"
	CodeRefused                ProblemCode = "refused"
	CodeUnauthenticated        ProblemCode = "unauthenticated"
	CodeLicenseKeyInvalid      ProblemCode = "license_key_invalid"
	CodeSignatureInvalid       ProblemCode = "signature_invalid"
	CodeCustodialNeedsAdminKey ProblemCode = "custodial_needs_admin_key"
	CodeOtherTenantKey         ProblemCode = "other_tenant_key"
	CodeNotFound               ProblemCode = "not_found"
	CodeMethodNotAllowed       ProblemCode = "method_not_allowed"
	CodeNotAcceptable          ProblemCode = "not_acceptable"
	CodeConflict               ProblemCode = "conflict"
	CodeDuplicate              ProblemCode = "duplicate"
	CodeAlreadyArchived        ProblemCode = "already_archived"
	CodeArchivedPolicy         ProblemCode = "archived_policy"
	CodeAPIKeyRevoked          ProblemCode = "api_key_revoked"
	CodeLicenseStatus          ProblemCode = "license_status"
	CodeMachineLimit           ProblemCode = "machine_limit"
	CodeSubscriptionCancelled  ProblemCode = "subscription_cancelled"
	CodeSubscriptionUnpaid     ProblemCode = "subscription_unpaid"
	CodeRenewalNotStuck        ProblemCode = "renewal_not_stuck"
	CodeUpgradePending         ProblemCode = "upgrade_pending"
	CodeDowngradeConcurrent    ProblemCode = "downgrade_concurrent"
	CodeUpgradeNotRetryable    ProblemCode = "upgrade_not_retryable"
	CodePayInState             ProblemCode = "payin_state"
	CodePayInRetried           ProblemCode = "payin_retried"
	CodeReferrerSet            ProblemCode = "referrer_set"
	CodeWebhookEndpointLimit   ProblemCode = "webhook_endpoint_limit"
	CodeWebhookEndpointOff     ProblemCode = "webhook_endpoint_disabled"
	CodeWebhookDeliveryDone    ProblemCode = "webhook_delivery_succeeded"
	CodeImportInProgress       ProblemCode = "import_in_progress"
	CodeJobState               ProblemCode = "job_state"
	CodeJobDuplicate           ProblemCode = "job_duplicate"
	CodeSandboxOnly            ProblemCode = "sandbox_only"
	CodeClockAdvanceRunning    ProblemCode = "clock_advance_running"
	CodeSandboxInvoiceClosed   ProblemCode = "sandbox_invoice_closed"
	CodeIdempotencyKeyInFlight ProblemCode = "idempotency_key_in_flight"
	CodeBodyTooLarge           ProblemCode = "body_too_large"
	CodeUnsupportedMediaType   ProblemCode = "unsupported_media_type"
	CodeInvalid                ProblemCode = "invalid"
	CodeUnknownCustomer        ProblemCode = "unknown_customer"
	CodeIdempotencyKeyReused   ProblemCode = "idempotency_key_reused"
	CodeRateLimited            ProblemCode = "rate_limited"
	CodeClientClosedRequest    ProblemCode = "client_closed_request"
	CodeInternal               ProblemCode = "internal"
	CodeUnavailable            ProblemCode = "unavailable"
	CodeRateUnavailable        ProblemCode = "exchange_rate_unavailable"
	CodeNotReady               ProblemCode = "not_ready"
	CodeError                  ProblemCode = "error"
)

// ProblemType describes one problem code: the status it is answered with, its title (the
// same for every occurrence, as RFC 9457 asks), what it means, and the domain error it
// translates (nil when the API raises it itself).
type ProblemType struct {
	Code        ProblemCode
	Status      int
	Title       string
	Description string
	// Err is the core error that problem() answers with this code (errors.Is), or nil.
	Err error
	// Default marks the code of its status for errors that carry no code of their own:
	// Huma's (a malformed body, a failed schema rule) and untranslated kinds.
	Default bool
}

// Problems returns every problem code Tessera answers, ordered by status, with a specific
// reason before the generic code of its kind (problem() takes the first that matches).
func Problems() []ProblemType {
	return []ProblemType{
		{CodeIdempotencyKeyInvalid, 400, "Invalid Idempotency-Key", "The Idempotency-Key header is not 1 to 255 printable ASCII characters.", nil, false},
		{CodeRefused, 400, "Refused", "The request is well formed but asks for something this operation does not do (a buyer's downgrade of a perpetual licence, an upgrade that charges nothing); the detail names the path that does.", core.ErrRefused, false},
		{CodeBadRequest, 400, "Bad Request", "The body is not JSON, is missing, or cannot be read.", nil, true},
		{CodeLicenseKeyInvalid, 401, "Invalid licence key", "The licence key in the body is malformed, forged or unknown.", nil, false},
		{CodeSignatureInvalid, 401, "Invalid webhook signature", "A payment provider's webhook has a bad or missing signature.", nil, false},
		{CodeUnauthenticated, 401, "Unauthorized", "The admin API key is missing, malformed, unknown or revoked.", core.ErrUnauthenticated, true},
		{CodeCustodialNeedsAdminKey, 403, "Admin key required", "Paying from custodial balances needs the tenant's admin API key.", nil, false},
		{CodeOtherTenantKey, 403, "Forbidden", "The admin API key belongs to another tenant than the one the request names.", nil, true},
		{CodeNotFound, 404, "Not Found", "Nothing with this id (or route) exists for the caller's tenant.", core.ErrNotFound, true},
		{CodeMethodNotAllowed, 405, "Method Not Allowed", "The path exists under other methods, listed in Allow.", nil, true},
		{CodeNotAcceptable, 406, "Not Acceptable", "No representation the Accept header allows.", nil, true},
		{CodeIdempotencyKeyInFlight, 409, "Request in flight", "A request with this Idempotency-Key is still being processed; retry later with the same key.", nil, false},
		{CodeDuplicate, 409, "Already exists", "A unique value (a slug, an email, an external id) is taken.", core.ErrDuplicate, false},
		{CodeAlreadyArchived, 409, "Already archived", "The product, policy or add-on is archived already.", core.ErrAlreadyArchived, false},
		{CodeArchivedPolicy, 409, "Policy archived", "The policy asked for is archived and no longer sold.", core.ErrArchivedPolicy, false},
		{CodeAPIKeyRevoked, 409, "API key revoked", "The API key is revoked already.", core.ErrAPIKeyRevoked, false},
		{CodeLicenseStatus, 409, "Licence status", "The licence's status (suspended, revoked, expired, ...) does not allow this change.", core.ErrLicenseStatus, false},
		{CodeMachineLimit, 409, "Machine limit reached", "Every machine slot of the licence is in use; deactivate one first.", core.ErrMachineLimit, false},
		{CodeSubscriptionCancelled, 409, "Subscription cancelled", "The subscription is cancelled (already).", core.ErrSubscriptionCancelled, false},
		{CodeSubscriptionUnpaid, 409, "Renewal unpaid", "The subscription is past_due or lapsed: pay its pending renewal first.", core.ErrSubscriptionUnpaid, false},
		{CodeRenewalNotStuck, 409, "Renewal not stuck", "The subscription's renewal has not reached its failure cap, so there is nothing to reset.", core.ErrRenewalNotStuck, false},
		{CodeUpgradePending, 409, "Upgrade waiting for payment", "An upgrade of this licence is already waiting for its payment: pay or cancel its PayIn first.", core.ErrUpgradePending, false},
		{CodeDowngradeConcurrent, 409, "Concurrent downgrade", "Another downgrade of this licence was scheduled at the same moment; schedule again to replace it.", core.ErrDowngradeConcurrent, false},
		{CodeUpgradeNotRetryable, 409, "Upgrade not retryable", "An upgrade is priced for the day it starts: start a new one instead of retrying its PayIn.", core.ErrUpgradeNotRetryable, false},
		{CodePayInState, 409, "PayIn state", "The PayIn's state does not allow this (a PENDING or PAID PayIn retried, a PAID one cancelled); the detail names the state.", core.ErrPayInState, false},
		{CodePayInRetried, 409, "PayIn already retried", "The failed PayIn was retried already; the detail names its successor.", core.ErrPayInRetried, false},
		{CodeReferrerSet, 409, "Referrer set", "The customer's referred_by is set and cannot change.", core.ErrReferrerSet, false},
		{CodeWebhookEndpointLimit, 409, "Too many webhook endpoints", "The tenant has the most webhook endpoints allowed; delete one first.", core.ErrWebhookEndpointLimit, false},
		{CodeWebhookEndpointOff, 409, "Webhook endpoint disabled", "The delivery's endpoint is disabled: enable it before retrying.", core.ErrWebhookEndpointDisabled, false},
		{CodeWebhookDeliveryDone, 409, "Webhook delivery succeeded", "The delivery succeeded already; only dead or pending deliveries can be retried.", core.ErrWebhookDeliverySucceeded, false},
		{CodeImportInProgress, 409, "Import in progress", "A licence of the import is being imported by another request.", core.ErrImportInProgress, false},
		{CodeJobState, 409, "Job state", "The job's state does not allow this (a running or available job retried, a finished one cancelled); the detail names the state.", core.ErrJobState, false},
		{CodeJobDuplicate, 409, "Identical job waiting", "An identical unique job (same kind and args) waits or runs and does the work a retry would.", core.ErrJobDuplicate, false},
		{CodeSandboxOnly, 409, "Sandbox only", "The operation is for sandbox tenants, and the key's tenant is live: it runs on real time, its data is real.", core.ErrSandboxOnly, false},
		{CodeClockAdvanceRunning, 409, "Clock advance running", "An advance of the sandbox's clock is running; poll it until it has succeeded, then advance again.", core.ErrClockAdvanceRunning, false},
		{CodeSandboxInvoiceClosed, 409, "Sandbox invoice closed", "The sandbox invoice takes no more payments: it is paid, expired at the sandbox's clock, or its PayIn failed; retry the PayIn for a new invoice.", core.ErrSandboxInvoiceClosed, false},
		{CodeConflict, 409, "Conflict", "The request collides with the current state.", core.ErrConflict, true},
		{CodeBodyTooLarge, 413, "Request Entity Too Large", "The body is over 1 MiB.", nil, true},
		{CodeUnsupportedMediaType, 415, "Unsupported Media Type", "The body's Content-Type is not one the operation reads.", nil, true},
		{CodeUnknownCustomer, 422, "Unknown customer", "A purchase names a customer the tenant does not have; create it with the admin API.", nil, false},
		{CodeIdempotencyKeyReused, 422, "Idempotency-Key reused", "The Idempotency-Key was used with a different request.", nil, false},
		{CodeInvalid, 422, "Unprocessable Entity", "The request breaks a rule of the schema or of the data; errors lists where.", core.ErrInvalid, true},
		{CodeRateLimited, 429, "Too Many Requests", "Too many validations for this client or licence key; retry after Retry-After seconds.", nil, true},
		{CodeClientClosedRequest, 499, "Client Closed Request", "The client closed the request before the answer.", nil, true},
		{CodeInternal, 500, "Internal Server Error", "An unexpected error; the detail gives the request id to quote.", nil, true},
		{CodeRateUnavailable, 503, "Exchange rate unavailable", "The exchange rate of the price's currency is unavailable; retry shortly.", nil, false},
		{CodeNotReady, 503, "Not ready", "The server cannot serve (readiness check).", nil, false},
		{CodeUnavailable, 503, "Service Unavailable", "The database is unreachable, or aborted the request to break a deadlock with a concurrent one (nothing was written); retry after Retry-After seconds, a write with the same Idempotency-Key.", nil, true},
		{CodeError, 0, "Error", "An error of a status no other code covers.", nil, false},
	}
}

// problemTypeOf returns the ProblemType of code.
func problemTypeOf(code ProblemCode) ProblemType {
	for _, p := range Problems() {
		if p.Code == code {
			return p
		}
	}
	panic(fmt.Sprintf("api: unknown problem code %q", code))
}

// defaultCode is the code of an error of status that carries none of its own.
func defaultCode(status int) ProblemCode {
	for _, p := range Problems() {
		if p.Default && p.Status == status {
			return p.Code
		}
	}
	return CodeError
}

// Schema publishes ProblemCode as the component schema ProblemCode, a string with the enum
// of every code, so that generated clients get them as a named type with constants.
func (ProblemCode) Schema(r huma.Registry) *huma.Schema {
	all := Problems()
	codes := make([]any, len(all))
	for i, p := range all {
		codes[i] = string(p.Code)
	}
	schema := &huma.Schema{
		Type: huma.TypeString, Enum: codes,
		Description: "The stable, machine-readable reason of a problem; branch on it, not on title or detail. The README lists what each means.",
	}
	schema.PrecomputeMessages()
	r.Map()["ProblemCode"] = schema
	return &huma.Schema{Ref: "#/components/schemas/ProblemCode"}
}

// Problem is the RFC 9457 problem+json body of every error answer, with its code.
type Problem struct {
	Type   string              `json:"type" format:"uri-reference" example:"/problems/payin_state" doc:"The problem type: /problems/ followed by code, a URI reference relative to this server."`
	Code   ProblemCode         `json:"code"`
	Title  string              `json:"title" example:"PayIn state" doc:"A short summary of the problem type; the same for every occurrence of the code."`
	Status int                 `json:"status" example:"409" doc:"The HTTP status."`
	Detail string              `json:"detail,omitempty" example:"conflict: payin 0190... is PENDING; only a FAILED PayIn can be retried" doc:"What went wrong in this occurrence, for people."`
	Errors []*huma.ErrorDetail `json:"errors,omitempty" doc:"Where the request is invalid, one entry per error (validation problems)."`
}

// Error returns the problem's detail.
func (p *Problem) Error() string { return p.Detail }

// GetStatus returns the problem's HTTP status.
func (p *Problem) GetStatus() int { return p.Status }

// ContentType answers problems as application/problem+json.
func (p *Problem) ContentType(ct string) string {
	if ct == "application/json" {
		return "application/problem+json"
	}
	return ct
}

// newProblem returns the problem of code with detail and the error details of errs (huma
// ErrorDetailers keep their location and value).
func newProblem(code ProblemCode, detail string, errs ...error) *Problem {
	pt := problemTypeOf(code)
	return problemAt(pt, pt.Status, detail, errs...)
}

func problemAt(pt ProblemType, status int, detail string, errs ...error) *Problem {
	p := &Problem{Type: "/problems/" + string(pt.Code), Code: pt.Code, Title: pt.Title, Status: status, Detail: detail}
	if pt.Code == CodeError {
		p.Title = http.StatusText(status)
	}
	for _, err := range errs {
		var detailer huma.ErrorDetailer
		switch {
		case err == nil:
		case errors.As(err, &detailer):
			p.Errors = append(p.Errors, detailer.ErrorDetail())
		default:
			p.Errors = append(p.Errors, &huma.ErrorDetail{Message: err.Error()})
		}
	}
	return p
}

// humaError is Huma's NewError for Tessera: the errors Huma raises itself (a malformed
// body, a failed schema rule, a body too large) are problems with the default code of
// their status.
func humaError(status int, detail string, errs ...error) huma.StatusError {
	return problemAt(problemTypeOf(defaultCode(status)), status, detail, errs...)
}

// Huma builds its own errors, and the error schema of every operation, with huma.NewError:
// Huma's documented way to use another error type is to replace it, once, before any API is
// built.
func init() {
	huma.NewError = humaError
}
