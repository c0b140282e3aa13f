package core

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// ErrNotFound means the thing asked for does not exist for the caller's tenant. It never
// says whether it exists for another tenant.
var ErrNotFound = errors.New("not found")

// ErrConflict means the request collides with the current state: a taken unique value, or
// a transition the current state does not allow.
var ErrConflict = errors.New("conflict")

// ErrInvalid means the request breaks a rule of the data (a check constraint, a bad
// reference) that the API's schema could not catch.
var ErrInvalid = errors.New("invalid")

// ErrRefused means the request is well formed and consistent, but asks for something this
// path does not do (a buyer's downgrade of a perpetual licence, an upgrade with nothing to
// charge): the API answers 400 with the reason and, where there is one, the path that does.
var ErrRefused = errors.New("refused")

// reason is a specific cause of an error kind (ErrConflict, ErrInvalid, ...): an error
// wrapping it is both the reason and its kind (errors.Is), and reads as the kind, so
// fmt.Errorf("%w: payin %s is PAID", ErrPayInState, id) reads "conflict: payin ... is PAID".
// The API gives each reason its own problem code.
type reason struct{ kind error }

func (r *reason) Error() string { return r.kind.Error() }
func (r *reason) Unwrap() error { return r.kind }

// The reasons of ErrConflict: each is ErrConflict too, and names a different collision, so
// that a client can tell them apart (the API publishes one problem code per reason).
var (
	// ErrDuplicate: a unique value is taken (a unique or exclusion constraint).
	ErrDuplicate error = &reason{ErrConflict}
	// ErrAlreadyArchived: the thing is archived already.
	ErrAlreadyArchived error = &reason{ErrConflict}
	// ErrArchivedPolicy: the policy asked for is archived and no longer sold or reachable.
	ErrArchivedPolicy error = &reason{ErrConflict}
	// ErrAPIKeyRevoked: the API key is revoked already.
	ErrAPIKeyRevoked error = &reason{ErrConflict}
	// ErrLicenseStatus: the licence's status does not allow the change.
	ErrLicenseStatus error = &reason{ErrConflict}
	// ErrMachineLimit: every machine slot of the licence is in use.
	ErrMachineLimit error = &reason{ErrConflict}
	// ErrSubscriptionCancelled: the subscription is cancelled (already).
	ErrSubscriptionCancelled error = &reason{ErrConflict}
	// ErrSubscriptionUnpaid: the subscription is past_due or lapsed; its renewal must be paid first.
	ErrSubscriptionUnpaid error = &reason{ErrConflict}
	// ErrRenewalNotStuck: the renewal is not stuck, so there is nothing to reset.
	ErrRenewalNotStuck error = &reason{ErrConflict}
	// ErrUpgradePending: an upgrade of the licence is already waiting for its payment.
	ErrUpgradePending error = &reason{ErrConflict}
	// ErrDowngradeConcurrent: another downgrade of the licence was scheduled at the same moment.
	ErrDowngradeConcurrent error = &reason{ErrConflict}
	// ErrUpgradeNotRetryable: an upgrade's PayIn cannot be retried (its price is for the day it started).
	ErrUpgradeNotRetryable error = &reason{ErrConflict}
	// ErrPayInState: the PayIn's state does not allow the change (a pending PayIn retried, a
	// paid one failed).
	ErrPayInState error = &reason{ErrConflict}
	// ErrPayInRetried: the failed PayIn was retried already.
	ErrPayInRetried error = &reason{ErrConflict}
	// ErrReferrerSet: the customer's referrer is set and cannot change.
	ErrReferrerSet error = &reason{ErrConflict}
	// ErrWebhookEndpointLimit: the tenant has the most webhook endpoints allowed.
	ErrWebhookEndpointLimit error = &reason{ErrConflict}
	// ErrWebhookEndpointDisabled: the webhook endpoint is disabled.
	ErrWebhookEndpointDisabled error = &reason{ErrConflict}
	// ErrWebhookDeliverySucceeded: the webhook delivery succeeded already.
	ErrWebhookDeliverySucceeded error = &reason{ErrConflict}
	// ErrImportInProgress: the licence is being imported by another request.
	ErrImportInProgress error = &reason{ErrConflict}
	// ErrJobState: the River job's state does not allow the action (a running job retried, a
	// finished one cancelled).
	ErrJobState error = &reason{ErrConflict}
	// ErrSandboxOnly: the operation is for sandbox tenants, and the tenant is live.
	ErrSandboxOnly error = &reason{ErrConflict}
	// ErrClockAdvanceRunning: an advance of the tenant's clock is running already.
	ErrClockAdvanceRunning error = &reason{ErrConflict}
	// ErrSandboxInvoiceClosed: the sandbox invoice takes no more payments (paid, expired, or
	// its PayIn failed).
	ErrSandboxInvoiceClosed error = &reason{ErrConflict}
	// ErrJobDuplicate: an identical unique job (same kind and args) waits or runs, and does
	// the work a retry would.
	ErrJobDuplicate error = &reason{ErrConflict}
)

// translate turns a database error into Tessera's errors (DB and Tx call it on every error
// of a query): no rows is ErrNotFound, unique and exclusion violations are ErrDuplicate (an
// ErrConflict), check, not-null and foreign-key violations and values the database cannot
// store (a NUL in text, a number out of range) are ErrInvalid, each naming the constraint or
// the problem. Other errors, and errors translated already, pass through. It is the one
// place where database errors are interpreted.
func translate(err error) error {
	if translated := (*dbError)(nil); errors.As(err, &translated) {
		return err
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return &dbError{kind: ErrNotFound, msg: "not found", cause: err}
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return err
	}
	switch pgErr.Code {
	case "23505", "23P01": // unique_violation, exclusion_violation
		return &dbError{kind: ErrDuplicate, msg: "conflict: " + pgErr.ConstraintName + " already exists", cause: err}
	case "23514", "23502", "23503": // check, not_null, foreign_key
		return &dbError{kind: ErrInvalid, msg: "invalid: " + constraintOrMessage(pgErr), cause: err}
	case "22P05", "22021": // untranslatable_character (a NUL in text), character_not_in_repertoire
		return &dbError{kind: ErrInvalid, msg: "invalid: text must be valid UTF-8 without NUL characters", cause: err}
	case "22P02", "22001", "22003", "22007", "22008": // bad text representation, too long, out of range, bad or overflowing date/time
		return &dbError{kind: ErrInvalid, msg: "invalid: " + pgErr.Message, cause: err}
	}
	return err
}

// DBUnavailable reports whether err means the database cannot be reached, as during a
// restart or an outage, rather than that it refused the request: a failed connection
// attempt (the server is down, refuses connections or is still starting), a connection the
// server or the network closed (SQLSTATE class 08, 57P01 admin_shutdown, 57P02
// crash_shutdown, 57P03 cannot_connect_now), or a network error on a database connection.
// A cancelled or timed-out context is not an outage. Such a request may succeed when retried.
func DBUnavailable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) || errors.Is(err, pgconn.ErrConnClosed) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03":
			return true
		}
		return strings.HasPrefix(pgErr.Code, "08")
	}
	// pgconn's own errors (those that say whether they are safe to retry) wrapping a
	// network failure or a connection closed mid-message.
	var driverErr interface{ SafeToRetry() bool }
	var netErr net.Error
	return errors.As(err, &driverErr) &&
		(errors.As(err, &netErr) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF))
}

// DBConflict reports whether the database aborted the transaction to resolve its conflict
// with a concurrent one: a deadlock (40P01, Postgres aborts one of the transactions that
// wait for each other) or a serialization failure (40001). Nothing of the transaction was
// written, and it may succeed when run again.
func DBConflict(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// dbError is a translated database error: it reads as the domain problem, without the
// driver's text, and is both its kind (errors.Is) and its cause (errors.As).
type dbError struct {
	kind  error
	msg   string
	cause error
}

func (e *dbError) Error() string   { return e.msg }
func (e *dbError) Unwrap() []error { return []error{e.kind, e.cause} }

func constraintOrMessage(pgErr *pgconn.PgError) string {
	if pgErr.ConstraintName != "" {
		return "violates " + pgErr.ConstraintName
	}
	return pgErr.Message
}

// FieldError is an ErrInvalid about one field of a step's input: Field names it as the
// request spells it ("referred_by"), Detail says what is wrong and Value is what was given.
// The API answers it as a 422 located at that field of the body.
type FieldError struct {
	Field  string
	Detail string
	Value  any
}

// Error returns the detail.
func (e *FieldError) Error() string { return e.Detail }

// Unwrap makes a FieldError an ErrInvalid.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// notFound names what was not found in a translated ErrNotFound ("not found: policy <id>");
// other errors pass through.
func notFound(err error, noun string, id uuid.UUID) error {
	if errors.Is(err, ErrNotFound) {
		return fmt.Errorf("%w: %s %s", ErrNotFound, noun, id)
	}
	return err
}

// archiveError explains why a guarded archive of noun id found no row (a translated
// ErrNotFound): get reports the thing's ErrNotFound when it does not exist; otherwise it was
// already archived (ErrAlreadyArchived). Other errors are wrapped.
func archiveError(err error, noun string, id uuid.UUID, get func() error) error {
	if !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("archive %s %s: %w", noun, id, err)
	}
	if err := notFound(get(), noun, id); err != nil {
		return err
	}
	return fmt.Errorf("%w: %s %s is already archived", ErrAlreadyArchived, noun, id)
}

// FieldErrors is an ErrInvalid about several fields of a step's input at once (a batch with
// more than one bad item): Detail sums them up, Fields says where each is. The API answers it
// as one 422 listing every field.
type FieldErrors struct {
	Detail string
	Fields []FieldError
}

// Error returns the detail.
func (e *FieldErrors) Error() string { return e.Detail }

// Unwrap makes FieldErrors an ErrInvalid.
func (e *FieldErrors) Unwrap() error { return ErrInvalid }
