package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/riverqueue/river"

	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/payment"
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
	Description: "Verifies BTCPay-Sig over the raw body (401 otherwise, recording nothing), records the delivery once " +
		"by its id (ids and type of at most 100 printable ASCII characters without spaces, 422 otherwise), and " +
		"enqueues a payin.settle job of its own in the same transaction (every recorded delivery is processed); the " +
		"job re-confirms the invoice with BTCPay before anything is fulfilled, and credits money that reached the " +
		"invoice of a failed or paid PayIn to the payer. Answers at once.",
	Tags:   payInTags,
	Errors: []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusUnprocessableEntity},
}

// providerWebhookBTCPay verifies and records a BTCPay webhook delivery and enqueues the
// settle of its invoice.
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
	recorded, err := s.queries.ProviderWebhookRecord(ctx, tx(ctx), sql.ProviderWebhookRecordParams{
		Provider: s.cfg.Payments.Name(), DeliveryID: delivery, Type: event.Type, InvoiceID: event.InvoiceID, Now: s.now(ctx),
	})
	if err != nil {
		return nil, problem(ctx, err)
	}
	out := &ProviderWebhookOutput{}
	out.Body.Received, out.Body.Duplicate = true, !recorded
	if recorded && settlingWebhooks[event.Type] && event.InvoiceID != "" {
		_, err := s.cfg.Jobs.InsertManyTx(ctx, tx(ctx), []river.InsertManyParams{{
			Args: jobargs.PayInSettle{Provider: s.cfg.Payments.Name(), InvoiceID: event.InvoiceID, Trigger: delivery},
		}})
		if err != nil {
			return nil, problem(ctx, err)
		}
	}
	return out, nil
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
