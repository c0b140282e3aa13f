// Package payment is Tessera's boundary to payment providers and exchange rates: the
// interfaces the payment flows call, and the plain values that cross them. Implementations
// live in their own packages (internal/btcpay for BTCPay Server Greenfield; the fake BTCPay
// server for development and tests in internal/fakebtcpay).
package payment

import (
	"context"
	"errors"
	"net/http"
	"time"
)

// InvoiceStatus is a provider invoice's state, in BTCPay's words.
type InvoiceStatus string

// Invoice states.
const (
	InvoiceNew        InvoiceStatus = "New"
	InvoiceProcessing InvoiceStatus = "Processing"
	InvoiceSettled    InvoiceStatus = "Settled"
	InvoiceExpired    InvoiceStatus = "Expired"
	InvoiceInvalid    InvoiceStatus = "Invalid"
)

// InvoiceRequest asks a provider for an invoice.
type InvoiceRequest struct {
	// OrderID is Tessera's PayIn id; the provider echoes it in webhooks and invoice reads
	// (BTCPay: metadata.orderId).
	OrderID string
	// AmountSats is the amount to invoice, in satoshis.
	AmountSats int64
	// Metadata is stored with the invoice (tenant, PayIn type, ...).
	Metadata map[string]string
}

// Invoice is a provider invoice as Tessera reads it.
type Invoice struct {
	ID         string
	OrderID    string
	Status     InvoiceStatus
	AmountSats int64
	// PaidSats is everything paid to the invoice, confirmed or not.
	PaidSats int64
	// ConfirmedSats is what its confirmed payments paid (a double spend can no longer undo
	// them): what money reaching a dead invoice is credited by.
	ConfirmedSats int64
	CheckoutURL   string
	ExpiresAt     time.Time
}

// WebhookEvent is a provider webhook whose signature was verified.
type WebhookEvent struct {
	// DeliveryID identifies this delivery; a redelivery of the same event carries the same
	// OriginalDeliveryID. Tessera records each original delivery once.
	DeliveryID         string
	OriginalDeliveryID string
	// Type is the provider's event type (BTCPay: InvoiceSettled, InvoiceExpired,
	// InvoiceInvalid, InvoiceProcessing, InvoiceReceivedPayment, ...).
	Type      string
	InvoiceID string
	// OrderID is the PayIn id when the provider echoes it.
	OrderID string
}

// ErrBadSignature means a webhook's signature is missing or does not verify.
var ErrBadSignature = errors.New("payment: bad webhook signature")

// ErrNotFound means the provider has no such invoice.
var ErrNotFound = errors.New("payment: no such invoice")

// ErrNotInvalidatable means the provider refused to mark an invoice invalid because its
// status does not allow it: it is settled, or invalid already.
var ErrNotInvalidatable = errors.New("payment: invoice cannot be marked invalid")

// Provider creates and reads invoices at a payment provider and verifies its webhooks.
// Errors other than ErrNotFound, ErrNotInvalidatable and ErrBadSignature are transient
// (network, 5xx) and worth retrying.
type Provider interface {
	// Name is the provider's name as stored on invoices: "btcpay".
	Name() string
	// CreateInvoice creates an invoice in sats.
	CreateInvoice(ctx context.Context, r InvoiceRequest) (Invoice, error)
	// GetInvoice reads an invoice, to re-confirm what a webhook said.
	GetInvoice(ctx context.Context, id string) (Invoice, error)
	// FindInvoice finds the newest invoice created for orderID (ErrNotFound: none), so that a
	// retried creation reuses an invoice an earlier attempt created but could not record.
	FindInvoice(ctx context.Context, orderID string) (Invoice, error)
	// InvalidateInvoice marks an open or expired invoice invalid, so that its checkout no
	// longer takes payments (a PayIn that failed does not want them). A settled or already
	// invalid invoice is ErrNotInvalidatable, an unknown one ErrNotFound. Money that still
	// reaches it is read by GetInvoice like any other.
	InvalidateInvoice(ctx context.Context, id string) error
	// ParseWebhook verifies a webhook's signature over the raw body and decodes it.
	ParseWebhook(body []byte, header http.Header) (WebhookEvent, error)
}

// Rate is the price of one bitcoin in a fiat currency, in that currency's minor units
// (cents): $50,000.00/BTC is 5000000.
type Rate struct {
	Currency    string
	MinorPerBTC int64
	// Source names where the rate came from ("btcpay:kraken", "fixed").
	Source    string
	FetchedAt time.Time
}

// RateSource tells the current rate of a fiat currency (USD, EUR).
type RateSource interface {
	Rate(ctx context.Context, currency string) (Rate, error)
}
