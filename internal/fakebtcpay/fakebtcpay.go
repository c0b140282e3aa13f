// Package fakebtcpay is a fake BTCPay Server for development and tests. It speaks the part of
// the Greenfield API that Tessera uses (create and read invoices in SATS, an invoice's
// payment methods and payments, marking an invoice invalid, the store's rates) with API-key
// authentication, keeps invoices in memory,
// and lets tests and humans settle, expire or invalidate invoices, which sends the matching
// webhooks signed like BTCPay's (BTCPay-Sig). It listens wherever its Handler is served:
// httptest on loopback in tests, `tessera fake-btcpay` for demos.
package fakebtcpay

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/tessera/tessera/internal/btcpay"
	"github.com/tessera/tessera/internal/clock"
)

// Webhook event types the fake server sends.
const (
	EventInvoiceCreated    = "InvoiceCreated"
	EventInvoiceProcessing = "InvoiceProcessing"
	EventInvoiceSettled    = "InvoiceSettled"
	EventInvoiceExpired    = "InvoiceExpired"
	EventInvoiceInvalid    = "InvoiceInvalid"
)

// Invoice statuses, as Greenfield spells them.
const (
	StatusNew        = "New"
	StatusProcessing = "Processing"
	StatusSettled    = "Settled"
	StatusExpired    = "Expired"
	StatusInvalid    = "Invalid"
)

// ErrNotFound means the fake server has no such invoice.
var ErrNotFound = errors.New("fakebtcpay: no such invoice")

// ErrState means the invoice's status does not allow the change asked for.
var ErrState = errors.New("fakebtcpay: invoice status does not allow this")

// Config configures a Server.
type Config struct {
	// StoreID is the only store the server knows (required).
	StoreID string
	// APIKey is the Greenfield API key it accepts, as "Authorization: token <APIKey>" (required).
	APIKey string
	// WebhookSecret signs webhooks (required).
	WebhookSecret string
	// WebhookURL receives webhooks (Tessera: .../v1/providers/btcpay/webhook). Default: none;
	// SendWebhook then fails and the demo endpoints send nothing.
	WebhookURL string
	// Clock stamps invoices and webhooks. Default: clock.System.
	Clock clock.Clock
	// Rates answers the rates endpoint: currency ("USD") → price of one BTC as a decimal string
	// ("50000.00"). Pairs not listed answer with an error, like BTCPay. Default: none.
	Rates map[string]string
	// InvoiceExpiry is how long a new invoice stays payable (its expirationTime). Default: 15
	// minutes, BTCPay's default.
	InvoiceExpiry time.Duration
	// HTTPClient delivers webhooks. Default: a client with a 10 s timeout.
	HTTPClient *http.Client
}

// Server is the fake BTCPay server. It is safe for concurrent use.
type Server struct {
	cfg Config
	mux *http.ServeMux

	mu       sync.Mutex
	invoices map[string]*invoice
	order    []string // invoice ids, oldest first
	failNext int
	requests int
}

// invoice is one invoice in memory.
type invoice struct {
	ID         string
	Status     string
	Additional string
	AmountSats int64
	PaidSats   int64
	Payments   []invoicePayment
	Metadata   map[string]any
	Checkout   string
	Created    time.Time
	Expires    time.Time
}

// invoicePayment is one payment to an invoice: its sats and whether it is confirmed
// (Greenfield's payment status Settled) or not yet (Processing).
type invoicePayment struct {
	Sats    int64
	Settled bool
}

// New validates cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.StoreID == "":
		return nil, errors.New("fakebtcpay: StoreID is required")
	case cfg.APIKey == "":
		return nil, errors.New("fakebtcpay: APIKey is required")
	case cfg.WebhookSecret == "":
		return nil, errors.New("fakebtcpay: WebhookSecret is required")
	case cfg.InvoiceExpiry < 0:
		return nil, errors.New("fakebtcpay: InvoiceExpiry is negative")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.System{}
	}
	if cfg.InvoiceExpiry == 0 {
		cfg.InvoiceExpiry = 15 * time.Minute
	}
	if cfg.HTTPClient == nil {
		// Its own connection pool: an httptest server's Close closes http.DefaultTransport's
		// idle connections and fails the requests dialling on it ("CloseIdleConnections
		// called"), which made webhook sends fail under parallel tests.
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second, Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	rates := make(map[string]string, len(cfg.Rates))
	for currency, rate := range cfg.Rates {
		rates[currency] = rate
	}
	cfg.Rates = rates
	s := &Server{cfg: cfg, invoices: map[string]*invoice{}}
	s.routes()
	return s, nil
}

// Handler serves the Greenfield API under /api/v1/, the demo endpoints under /fake/ and
// checkout pages under /i/.
func (s *Server) Handler() http.Handler { return s.mux }

// FailNext makes the next n API calls answer 503, as an unavailable BTCPay would.
func (s *Server) FailNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext = n
}

// Requests returns how many API calls the server received, failed ones included.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Settle marks invoice id paid with paidSats in one confirmed payment, which may differ from
// its amount (an under- or overpayment, recorded in additionalStatus as PaidPartial or
// PaidOver). Only New and Processing invoices can be settled. It sends no webhook (see
// SendWebhook).
func (s *Server) Settle(id string, paidSats int64) error {
	if paidSats < 0 {
		return fmt.Errorf("fakebtcpay: settle %s: paid %d sats is negative", id, paidSats)
	}
	return s.transition(id, StatusSettled, func(inv *invoice) {
		inv.PaidSats = paidSats
		inv.Payments = nil
		if paidSats > 0 {
			inv.Payments = []invoicePayment{{Sats: paidSats, Settled: true}}
		}
		switch {
		case paidSats < inv.AmountSats:
			inv.Additional = "PaidPartial"
		case paidSats > inv.AmountSats:
			inv.Additional = "PaidOver"
		default:
			inv.Additional = "None"
		}
	}, StatusNew, StatusProcessing)
}

// Expire marks a New or Processing invoice id expired. It sends no webhook.
func (s *Server) Expire(id string) error {
	return s.transition(id, StatusExpired, nil, StatusNew, StatusProcessing)
}

// Invalidate marks invoice id invalid, also after it settled (as BTCPay's "mark invalid"
// does). It sends no webhook.
func (s *Server) Invalidate(id string) error {
	return s.transition(id, StatusInvalid, func(inv *invoice) { inv.Additional = "Marked" },
		StatusNew, StatusProcessing, StatusSettled)
}

// MarkInvalid marks invoice id invalid as Greenfield's "mark invoice status" does: a New,
// Processing or Expired invoice, or a settled one that was marked by hand, becomes Invalid
// (marked); a settled or invalid one is ErrState. It sends no webhook.
func (s *Server) MarkInvalid(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.invoices[id]
	switch {
	case !ok:
		return fmt.Errorf("fakebtcpay: mark %s invalid: %w", id, ErrNotFound)
	case inv.Status == StatusInvalid || inv.Status == StatusSettled && inv.Additional != "Marked":
		return fmt.Errorf("fakebtcpay: mark %s invalid: it is %s: %w", id, inv.Status, ErrState)
	}
	inv.Status, inv.Additional = StatusInvalid, "Marked"
	return nil
}

// PayLate adds a confirmed payment of sats to an invoice that no longer expects it —
// expired, invalid, or settled already — as a buyer paying a stale checkout does; BTCPay
// records such payments (PaidLate) without changing the status. It sends no webhook.
func (s *Server) PayLate(id string, sats int64) error {
	return s.payLate(id, sats, true)
}

// PayLateUnconfirmed is PayLate with a payment not confirmed yet (status Processing), which
// a double spend could still undo; ConfirmPayments confirms it.
func (s *Server) PayLateUnconfirmed(id string, sats int64) error {
	return s.payLate(id, sats, false)
}

func (s *Server) payLate(id string, sats int64, settled bool) error {
	if sats <= 0 {
		return fmt.Errorf("fakebtcpay: pay %s late: %d sats is not positive", id, sats)
	}
	return s.transition(id, "", func(inv *invoice) {
		inv.PaidSats += sats
		inv.Payments = append(inv.Payments, invoicePayment{Sats: sats, Settled: settled})
		if inv.Status != StatusInvalid {
			inv.Additional = "PaidLate"
		}
	}, StatusExpired, StatusInvalid, StatusSettled)
}

// ConfirmPayments confirms every payment of invoice id. It sends no webhook.
func (s *Server) ConfirmPayments(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.invoices[id]
	if !ok {
		return fmt.Errorf("fakebtcpay: confirm payments of %s: %w", id, ErrNotFound)
	}
	for i := range inv.Payments {
		inv.Payments[i].Settled = true
	}
	return nil
}

// transition moves invoice id to status (keeps it when status is empty) when its status is one of from, applying change.
func (s *Server) transition(id, status string, change func(*invoice), from ...string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.invoices[id]
	if !ok {
		return fmt.Errorf("fakebtcpay: change %s to %q: %w", id, status, ErrNotFound)
	}
	for _, f := range from {
		if inv.Status == f {
			if status != "" {
				inv.Status = status
			}
			if change != nil {
				change(inv)
			}
			return nil
		}
	}
	return fmt.Errorf("fakebtcpay: change %s to %q: it is %s: %w", id, status, inv.Status, ErrState)
}

// Invoice is an invoice as the demo endpoints list it.
type Invoice struct {
	ID               string         `json:"id"`
	Status           string         `json:"status"`
	AdditionalStatus string         `json:"additionalStatus"`
	AmountSats       int64          `json:"amountSats"`
	PaidSats         int64          `json:"paidSats"`
	OrderID          string         `json:"orderId"`
	Metadata         map[string]any `json:"metadata"`
	CheckoutLink     string         `json:"checkoutLink"`
	ExpiresAt        time.Time      `json:"expiresAt"`
}

// Invoices returns every invoice, oldest first.
func (s *Server) Invoices() []Invoice {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Invoice, 0, len(s.order))
	for _, id := range s.order {
		out = append(out, s.invoices[id].view())
	}
	return out
}

// Invoice returns invoice id, or ErrNotFound.
func (s *Server) Invoice(id string) (Invoice, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.invoices[id]
	if !ok {
		return Invoice{}, fmt.Errorf("fakebtcpay: invoice %s: %w", id, ErrNotFound)
	}
	return inv.view(), nil
}

// view copies an invoice for callers outside the lock.
func (inv *invoice) view() Invoice {
	metadata := make(map[string]any, len(inv.Metadata))
	for k, v := range inv.Metadata {
		metadata[k] = v
	}
	orderID, _ := inv.Metadata["orderId"].(string)
	return Invoice{
		ID: inv.ID, Status: inv.Status, AdditionalStatus: inv.Additional, AmountSats: inv.AmountSats,
		PaidSats: inv.PaidSats, OrderID: orderID, Metadata: metadata, CheckoutLink: inv.Checkout,
		ExpiresAt: inv.Expires,
	}
}

// SignedWebhook builds one first delivery of eventType about invoice id, as BTCPay sends it:
// the JSON body and the headers with a valid BTCPay-Sig. Posting the same body several times
// (concurrently, say) replays one delivery byte for byte.
func (s *Server) SignedWebhook(id, eventType string) ([]byte, http.Header, error) {
	return s.webhook(id, eventType, "")
}

// webhook builds a delivery of eventType about invoice id; originalDeliveryID non-empty makes
// it a redelivery of that delivery.
func (s *Server) webhook(id, eventType, originalDeliveryID string) ([]byte, http.Header, error) {
	inv, err := s.Invoice(id)
	if err != nil {
		return nil, nil, err
	}
	deliveryID := newID()
	payload := map[string]any{
		"deliveryId":         deliveryID,
		"webhookId":          "fake-webhook",
		"originalDeliveryId": deliveryID,
		"isRedelivery":       false,
		"type":               eventType,
		"timestamp":          s.cfg.Clock.Now().Unix(),
		"storeId":            s.cfg.StoreID,
		"invoiceId":          inv.ID,
		"metadata":           inv.Metadata,
	}
	if originalDeliveryID != "" {
		payload["originalDeliveryId"] = originalDeliveryID
		payload["isRedelivery"] = true
	}
	switch eventType {
	case EventInvoiceSettled:
		payload["manuallyMarked"] = false
		payload["overPaid"] = inv.PaidSats > inv.AmountSats
	case EventInvoiceExpired:
		payload["partiallyPaid"] = inv.PaidSats > 0
	case EventInvoiceInvalid:
		payload["manuallyMarked"] = true
	}
	body, err := json.Marshal(payload)
	if err != nil {
		return nil, nil, fmt.Errorf("fakebtcpay: encode webhook: %w", err)
	}
	header := http.Header{}
	header.Set("Content-Type", "application/json")
	header.Set(btcpay.SignatureHeader, btcpay.Sign([]byte(s.cfg.WebhookSecret), body))
	return body, header, nil
}

// SendWebhook delivers eventType about invoice id to WebhookURL times times, one after the
// other, and returns the receiver's HTTP statuses. The first is a first delivery; the others
// are redeliveries of it, as BTCPay's "redeliver" makes them: a new deliveryId, the first's
// originalDeliveryId, isRedelivery true. All carry valid signatures.
func (s *Server) SendWebhook(id, eventType string, times int) ([]int, error) {
	if s.cfg.WebhookURL == "" {
		return nil, errors.New("fakebtcpay: send webhook: no WebhookURL configured")
	}
	statuses := make([]int, 0, times)
	var original string
	for range times {
		body, header, err := s.webhook(id, eventType, original)
		if err != nil {
			return statuses, err
		}
		if original == "" {
			var p struct {
				DeliveryID string `json:"deliveryId"`
			}
			if err := json.Unmarshal(body, &p); err != nil {
				return statuses, fmt.Errorf("fakebtcpay: read own webhook: %w", err)
			}
			original = p.DeliveryID
		}
		status, err := s.post(body, header)
		if err != nil {
			return statuses, err
		}
		statuses = append(statuses, status)
	}
	return statuses, nil
}

// post sends one webhook body to WebhookURL and returns the status.
func (s *Server) post(body []byte, header http.Header) (int, error) {
	req, err := http.NewRequest(http.MethodPost, s.cfg.WebhookURL, bytes.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("fakebtcpay: build webhook request: %w", err)
	}
	req.Header = header.Clone()
	res, err := s.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("fakebtcpay: deliver webhook to %s: %w", s.cfg.WebhookURL, err)
	}
	defer func() { _ = res.Body.Close() }() // drained below: closing loses nothing
	if _, err := io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20)); err != nil {
		return 0, fmt.Errorf("fakebtcpay: read webhook answer: %w", err)
	}
	return res.StatusCode, nil
}

// newID returns a random identifier (26 base32 characters).
func newID() string { return rand.Text() }

// sortedCurrencies returns the configured rate currencies in order.
func (s *Server) sortedCurrencies() []string {
	out := make([]string, 0, len(s.cfg.Rates))
	for c := range s.cfg.Rates {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// formatSats writes sats as BTCPay writes a SATS amount.
func formatSats(sats int64) string { return strconv.FormatInt(sats, 10) }
