package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/payment"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/sql"
)

// ProviderWebhookInput is a payment provider's webhook: its raw body, verified by signature.
type ProviderWebhookInput struct {
	Signature string `header:"BTCPay-Sig" doc:"sha256=<hex HMAC-SHA256 of the raw body with the webhook secret>"`
	RawBody   []byte
}

// ProviderWebhookOutput acknowledges a webhook.
type ProviderWebhookOutput struct {
	Body struct {
		Received  bool `json:"received"`
		Duplicate bool `json:"duplicate" doc:"The delivery was recorded before; nothing more was done."`
	}
}

// settlingWebhooks are the provider events that can end a PayIn; others are recorded only.
var settlingWebhooks = map[string]bool{
	"InvoiceSettled": true, "InvoicePaymentSettled": true, "InvoiceExpired": true, "InvoiceInvalid": true,
}

func (s *Server) registerProviders() {
	huma.Register(s.api, providerWebhookBTCPayOperation, s.providerWebhookBTCPay)
}

var providerWebhookBTCPayOperation = huma.Operation{
	OperationID: "provider-webhook-btcpay",
	Method:      http.MethodPost,
	Path:        "/v1/providers/btcpay/webhook",
	Summary:     "Receive a BTCPay Server webhook",
	Description: "Verifies BTCPay-Sig over the raw body (401 otherwise, recording nothing) and records the delivery " +
		"once by its id (ids and type of at most 100 printable ASCII characters without spaces, 422 otherwise). " +
		"For an event that can end a PayIn it re-confirms the invoice with BTCPay first — Tessera settles by what " +
		"BTCPay says, not by what the webhook claims — and, in the transaction that records the delivery, settles " +
		"the invoice's PayIn (paid, failed, or left open) or credits money that reached the invoice of a failed or " +
		"paid PayIn to the payer. When that cannot be done at once (BTCPay unreachable, slow or failing, the " +
		"invoice not committed yet, a conflict in the database), or should not be (the server is answering licence " +
		"validations, which go first), the same transaction enqueues a payin.settle job " +
		"instead, which does it with retries: every recorded delivery is settled or has its job. A delivery " +
		"recorded before answers duplicate: true and does nothing.",
	Tags:     payInTags,
	Errors:   []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusUnprocessableEntity},
	Metadata: map[string]any{metadataOwnTransactions: true},
}

// providerWebhookBTCPay verifies and records a BTCPay webhook delivery and settles its
// invoice (the operation's description says how). It runs outside the transact middleware:
// the provider is asked before any transaction is opened, so no connection waits on it, and
// the delivery is recorded with its settle, or with its payin.settle job, in one transaction
// (webhookTx). When the settle fails in the database (a deadlock, a lock or statement
// timeout, ...), that transaction rolls back and a second records the delivery with its job.
func (s *Server) providerWebhookBTCPay(ctx context.Context, in *ProviderWebhookInput) (*ProviderWebhookOutput, error) {
	event, err := s.cfg.Payments.ParseWebhook(in.RawBody, http.Header{"Btcpay-Sig": {in.Signature}})
	switch {
	case errors.Is(err, payment.ErrBadSignature):
		return nil, newProblem(CodeSignatureInvalid, "bad or missing BTCPay-Sig")
	case err != nil:
		return nil, newProblem(CodeBadRequest, "not a BTCPay webhook: "+err.Error())
	}
	if err := providerIDs(event); err != nil {
		return nil, err
	}
	delivery := event.OriginalDeliveryID
	if delivery == "" {
		delivery = event.DeliveryID
	}
	settling := settlingWebhooks[event.Type] && event.InvoiceID != ""
	settle := core.PayInSettleInvoiceParams{Provider: s.cfg.Payments.Name(), InvoiceID: event.InvoiceID}
	inline := false
	if settling && !s.cfg.Priority.Busy() { // while validations are answered, the gated job settles

		settle.Remote, settle.Gone, inline = s.confirmInvoice(ctx, event.InvoiceID)
	}
	recordAndSettle := func(tx pgx.Tx, st core.Step) (bool, error) {
		recorded, err := s.queries.ProviderWebhookRecord(ctx, tx, sql.ProviderWebhookRecordParams{
			Provider: settle.Provider, DeliveryID: delivery, Type: event.Type, InvoiceID: event.InvoiceID, Now: st.Now,
		})
		if err != nil || !recorded || !settling {
			return recorded, err
		}
		if inline {
			payin, err := core.PayInSettleInvoice(ctx, tx, st, settle)
			if !errors.Is(err, core.ErrNotFound) {
				if err == nil && settle.Gone && payin.State == sql.PayinStatePENDING {
					requestInfoFrom(ctx).logger().WarnContext(ctx, "the provider no longer knows the invoice of a pending payin", "payin", payin.ID, "invoice", event.InvoiceID)
				}
				return true, err
			}
		}
		_, err = s.cfg.Jobs.InsertManyTx(ctx, tx, []river.InsertManyParams{{
			Args: jobargs.PayInSettle{Provider: settle.Provider, InvoiceID: event.InvoiceID, Trigger: delivery},
		}})
		return true, err
	}
	recorded, err := s.webhookTx(ctx, recordAndSettle)
	if err != nil && inline {
		requestInfoFrom(ctx).logger().WarnContext(ctx, "settling a webhook's invoice failed; leaving it to a payin.settle job", "invoice", event.InvoiceID, "error", err)
		inline = false
		recorded, err = s.webhookTx(ctx, recordAndSettle)
	}
	if err != nil {
		return nil, problem(ctx, err)
	}
	out := &ProviderWebhookOutput{}
	out.Body.Received, out.Body.Duplicate = true, !recorded
	return out, nil
}

// confirmInvoice asks the payment provider for invoice id, within
// Config.ProviderConfirmTimeout: its answer, or gone when the provider no longer knows it.
// confirmed is false when the provider could not answer (unreachable, failing, too slow):
// the settle is then left to a payin.settle job, which asks again with retries.
func (s *Server) confirmInvoice(ctx context.Context, id string) (remote payment.Invoice, gone, confirmed bool) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ProviderConfirmTimeout)
	defer cancel()
	remote, err := s.cfg.Payments.GetInvoice(ctx, id)
	gone = errors.Is(err, payment.ErrNotFound)
	if err != nil && !gone {
		requestInfoFrom(ctx).logger().WarnContext(ctx, "re-confirming a webhook's invoice failed; leaving it to a payin.settle job", "invoice", id, "error", err)
		return payment.Invoice{}, false, false
	}
	return remote, gone, true
}

// webhookTx runs fn, the work of a provider webhook, in one transaction, with a step acting
// as the provider at the server's time (core.PayInSettleInvoice moves it to a sandbox
// tenant's clock), and counts its domain outcomes once it has committed.
func (s *Server) webhookTx(ctx context.Context, fn func(tx pgx.Tx, st core.Step) (bool, error)) (bool, error) {
	done := &core.Outcomes{}
	st := core.Step{
		Now: s.now(ctx), Actor: core.Actor{Type: core.ActorProvider, ID: s.cfg.Payments.Name(), RequestID: requestInfoFrom(ctx).id},
		Box: s.cfg.Box, Jobs: s.cfg.Jobs, Outcomes: done,
	}
	var result bool
	err := pg.InTx(ctx, s.cfg.DB, func(tx pgx.Tx) error {
		var err error
		result, err = fn(tx, st)
		return err
	})
	if err != nil {
		return false, err
	}
	s.cfg.Outcomes.Count(done)
	return result, nil
}

// maxProviderID bounds the ids and type of a provider's webhook: BTCPay's are about 22
// characters.
const maxProviderID = 100

// providerIDs refuses a verified webhook whose delivery ids, type or invoice id are not 1 to
// maxProviderID printable ASCII characters without spaces (the invoice id may be absent),
// before any of them is stored or looked up.
func providerIDs(event payment.WebhookEvent) error {
	for _, id := range []struct {
		location, value string
		optional        bool
	}{
		{"body.deliveryId", event.DeliveryID, false},
		{"body.originalDeliveryId", event.OriginalDeliveryID, false},
		{"body.type", event.Type, false},
		{"body.invoiceId", event.InvoiceID, true},
	} {
		if id.optional && id.value == "" || printableASCII(id.value, maxProviderID) {
			continue
		}
		msg := fmt.Sprintf("%s must be 1 to %d printable ASCII characters without spaces", id.location, maxProviderID)
		return newProblem(CodeInvalid, msg, &huma.ErrorDetail{Location: id.location, Message: msg})
	}
	return nil
}
