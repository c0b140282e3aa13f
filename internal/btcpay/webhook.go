package btcpay

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/tessera/tessera/internal/payment"
)

// SignatureHeader is the header carrying a webhook's signature:
// "sha256=" + hex(HMAC-SHA256(webhook secret, raw body)).
const SignatureHeader = "BTCPay-Sig"

// Sign returns the BTCPay-Sig value of body under secret. The fake BTCPay server and tests
// sign with it.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// webhookPayload is the part of a Greenfield webhook event that Tessera reads.
type webhookPayload struct {
	DeliveryID         string `json:"deliveryId"`
	WebhookID          string `json:"webhookId"`
	OriginalDeliveryID string `json:"originalDeliveryId"`
	IsRedelivery       bool   `json:"isRedelivery"`
	Type               string `json:"type"`
	Timestamp          int64  `json:"timestamp"`
	StoreID            string `json:"storeId"`
	InvoiceID          string `json:"invoiceId"`
	Metadata           struct {
		OrderID json.RawMessage `json:"orderId"`
	} `json:"metadata"`
}

// ParseWebhook verifies body's BTCPay-Sig in constant time (payment.ErrBadSignature when it is
// missing or wrong) and then decodes the event. The event must carry a deliveryId and a type
// and, when it names a store, be from the configured store. OriginalDeliveryID is the
// deliveryId itself on a first delivery, so it identifies the event in every delivery.
// InvoiceID is empty for events that are not about an invoice.
func (c *Client) ParseWebhook(body []byte, header http.Header) (payment.WebhookEvent, error) {
	if err := verify(c.secret, body, header.Get(SignatureHeader)); err != nil {
		return payment.WebhookEvent{}, err
	}
	var p webhookPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return payment.WebhookEvent{}, fmt.Errorf("btcpay: decode webhook: %w", err)
	}
	switch {
	case p.DeliveryID == "":
		return payment.WebhookEvent{}, errors.New("btcpay: decode webhook: no deliveryId")
	case p.Type == "":
		return payment.WebhookEvent{}, fmt.Errorf("btcpay: decode webhook %s: no type", p.DeliveryID)
	case p.StoreID != "" && p.StoreID != c.storeID:
		return payment.WebhookEvent{}, fmt.Errorf("btcpay: webhook %s is for store %q, not %q", p.DeliveryID, p.StoreID, c.storeID)
	}
	event := payment.WebhookEvent{
		DeliveryID:         p.DeliveryID,
		OriginalDeliveryID: p.OriginalDeliveryID,
		Type:               p.Type,
		InvoiceID:          p.InvoiceID,
		OrderID:            stringOrEmpty(p.Metadata.OrderID),
	}
	if event.OriginalDeliveryID == "" {
		event.OriginalDeliveryID = event.DeliveryID
	}
	return event, nil
}

// verify checks a BTCPay-Sig value against body in constant time.
func verify(secret, body []byte, sig string) error {
	hexSig, ok := strings.CutPrefix(strings.TrimSpace(sig), "sha256=")
	if !ok {
		return fmt.Errorf("%w: %s header missing or not sha256=", payment.ErrBadSignature, SignatureHeader)
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return fmt.Errorf("%w: %s is not hex: %w", payment.ErrBadSignature, SignatureHeader, err)
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return payment.ErrBadSignature
	}
	return nil
}
