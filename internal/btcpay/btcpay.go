// Package btcpay is Tessera's client of BTCPay Server's Greenfield API: it creates and reads
// invoices in sats, verifies webhooks (BTCPay-Sig) and reads the store's exchange rates. It
// implements payment.Provider and payment.RateSource.
package btcpay

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/payment"
)

// Name is the provider name stored on invoices created through this package.
const Name = "btcpay"

// maxResponse bounds the bytes read from one BTCPay response.
const maxResponse = 1 << 20

// Config configures a Client.
type Config struct {
	// BaseURL is the BTCPay Server's address, e.g. https://btcpay.example.com (required; a
	// trailing slash is ignored).
	BaseURL string
	// StoreID is the BTCPay store that holds Tessera's invoices (required).
	StoreID string
	// APIKey is a Greenfield API key with the store's invoice and rate permissions (required).
	APIKey string
	// WebhookSecret is the secret of the store's webhook pointing at Tessera (required): it
	// verifies BTCPay-Sig.
	WebhookSecret string
	// HTTPClient sends the API requests. Default: a client with a 10 s timeout.
	HTTPClient *http.Client
	// Clock stamps fetched rates. Default: clock.System.
	Clock clock.Clock
}

// Client talks to one BTCPay store. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	storeID string
	apiKey  string
	secret  []byte
	http    *http.Client
	clock   clock.Clock
}

var (
	_ payment.Provider   = (*Client)(nil)
	_ payment.RateSource = (*Client)(nil)
)

// New validates cfg and returns a Client. It makes no request.
func New(cfg Config) (*Client, error) {
	base, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	switch {
	case cfg.BaseURL == "":
		return nil, errors.New("btcpay: BaseURL is required")
	case err != nil:
		return nil, fmt.Errorf("btcpay: parse BaseURL: %w", err)
	case base.Scheme != "http" && base.Scheme != "https" || base.Host == "":
		return nil, fmt.Errorf("btcpay: BaseURL %q is not an http(s) URL", cfg.BaseURL)
	case cfg.StoreID == "":
		return nil, errors.New("btcpay: StoreID is required")
	case cfg.APIKey == "":
		return nil, errors.New("btcpay: APIKey is required")
	case cfg.WebhookSecret == "":
		return nil, errors.New("btcpay: WebhookSecret is required")
	}
	c := &Client{
		base: base, storeID: cfg.StoreID, apiKey: cfg.APIKey, secret: []byte(cfg.WebhookSecret),
		http: cfg.HTTPClient, clock: cfg.Clock,
	}
	if c.http == nil {
		// Its own connection pool: closing another user's idle connections (an httptest
		// server's Close does it to http.DefaultTransport) must not fail this client's requests.
		c.http = &http.Client{Timeout: 10 * time.Second, Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if c.clock == nil {
		c.clock = clock.System{}
	}
	return c, nil
}

// Name returns "btcpay".
func (c *Client) Name() string { return Name }

// invoiceData is the part of Greenfield's InvoiceData that Tessera reads.
type invoiceData struct {
	ID             string  `json:"id"`
	Status         string  `json:"status"`
	Amount         decimal `json:"amount"`
	Currency       string  `json:"currency"`
	CheckoutLink   string  `json:"checkoutLink"`
	ExpirationTime int64   `json:"expirationTime"`
	Metadata       struct {
		OrderID json.RawMessage `json:"orderId"`
	} `json:"metadata"`
}

// paymentMethodData is the part of Greenfield's InvoicePaymentMethodDataModel that Tessera
// reads. BTCPay 1.x names the currency cryptoCode, 2.x currency.
type paymentMethodData struct {
	Currency          string        `json:"currency"`
	CryptoCode        string        `json:"cryptoCode"`
	PaymentMethodPaid decimal       `json:"paymentMethodPaid"`
	Payments          []paymentData `json:"payments"`
}

// paymentData is the part of Greenfield's payment (of an invoice payment method) that
// Tessera reads.
type paymentData struct {
	Value  decimal `json:"value"`
	Status string  `json:"status"`
}

// CreateInvoice creates an invoice of r.AmountSats in BTCPay's SATS currency, with r.Metadata
// and metadata.orderId = r.OrderID (which wins over an orderId key in r.Metadata).
func (c *Client) CreateInvoice(ctx context.Context, r payment.InvoiceRequest) (payment.Invoice, error) {
	if r.OrderID == "" {
		return payment.Invoice{}, errors.New("btcpay: create invoice: OrderID is required")
	}
	if r.AmountSats <= 0 {
		return payment.Invoice{}, fmt.Errorf("btcpay: create invoice for order %s: amount %d sats is not positive", r.OrderID, r.AmountSats)
	}
	metadata := make(map[string]string, len(r.Metadata)+1)
	for k, v := range r.Metadata {
		metadata[k] = v
	}
	metadata["orderId"] = r.OrderID
	body, err := json.Marshal(map[string]any{
		"amount":   strconv.FormatInt(r.AmountSats, 10),
		"currency": "SATS",
		"metadata": metadata,
	})
	if err != nil {
		return payment.Invoice{}, fmt.Errorf("btcpay: create invoice for order %s: encode: %w", r.OrderID, err)
	}
	var data invoiceData
	if err := c.do(ctx, http.MethodPost, c.storePath("invoices"), nil, body, &data); err != nil {
		return payment.Invoice{}, fmt.Errorf("btcpay: create invoice for order %s: %w", r.OrderID, err)
	}
	inv, err := data.invoice()
	if err != nil {
		return payment.Invoice{}, fmt.Errorf("btcpay: create invoice for order %s: %w", r.OrderID, err)
	}
	return inv, nil
}

// GetInvoice reads invoice id and what has been paid to it: the sum of paymentMethodPaid over
// its bitcoin payment methods (on-chain and Lightning), in whole sats rounded down, and the
// sum of its confirmed payments' values. An unknown invoice is payment.ErrNotFound.
func (c *Client) GetInvoice(ctx context.Context, id string) (payment.Invoice, error) {
	if err := validID(id); err != nil {
		return payment.Invoice{}, fmt.Errorf("btcpay: get invoice: %w", err)
	}
	var data invoiceData
	if err := c.do(ctx, http.MethodGet, c.storePath("invoices", id), nil, nil, &data); err != nil {
		return payment.Invoice{}, fmt.Errorf("btcpay: get invoice %s: %w", id, err)
	}
	inv, err := data.invoice()
	if err != nil {
		return payment.Invoice{}, fmt.Errorf("btcpay: get invoice %s: %w", id, err)
	}
	var methods []paymentMethodData
	if err := c.do(ctx, http.MethodGet, c.storePath("invoices", id, "payment-methods"), nil, nil, &methods); err != nil {
		return payment.Invoice{}, fmt.Errorf("btcpay: get payment methods of invoice %s: %w", id, err)
	}
	if inv.PaidSats, inv.ConfirmedSats, err = paidSats(methods); err != nil {
		return payment.Invoice{}, fmt.Errorf("btcpay: get payment methods of invoice %s: %w", id, err)
	}
	return inv, nil
}

// FindInvoice finds the newest of the store's invoices whose metadata.orderId is orderID
// (Greenfield's invoice list filtered by orderId, newest first). None is
// payment.ErrNotFound. PaidSats is not read (GetInvoice does).
func (c *Client) FindInvoice(ctx context.Context, orderID string) (payment.Invoice, error) {
	if orderID == "" {
		return payment.Invoice{}, errors.New("btcpay: find invoice: orderID is required")
	}
	var list []invoiceData
	query := url.Values{"orderId": {orderID}, "take": {"1"}}
	if err := c.do(ctx, http.MethodGet, c.storePath("invoices"), query, nil, &list); err != nil {
		return payment.Invoice{}, fmt.Errorf("btcpay: find invoice of order %s: %w", orderID, err)
	}
	if len(list) == 0 {
		return payment.Invoice{}, fmt.Errorf("btcpay: find invoice of order %s: %w", orderID, payment.ErrNotFound)
	}
	inv, err := list[0].invoice()
	if err != nil {
		return payment.Invoice{}, fmt.Errorf("btcpay: find invoice of order %s: %w", orderID, err)
	}
	return inv, nil
}

// InvalidateInvoice marks invoice id invalid with Greenfield's
// POST /api/v1/stores/{storeId}/invoices/{invoiceId}/status {"status":"Invalid"}. BTCPay
// allows it for New, Processing and Expired invoices (and ones marked by hand) and answers
// 422 otherwise — settled, or invalid already — which is payment.ErrNotInvalidatable; 404
// is payment.ErrNotFound.
func (c *Client) InvalidateInvoice(ctx context.Context, id string) error {
	if err := validID(id); err != nil {
		return fmt.Errorf("btcpay: invalidate invoice: %w", err)
	}
	var data invoiceData
	err := c.do(ctx, http.MethodPost, c.storePath("invoices", id, "status"), nil, []byte(`{"status":"Invalid"}`), &data)
	var serr *statusError
	if errors.As(err, &serr) && serr.status == http.StatusUnprocessableEntity {
		return fmt.Errorf("btcpay: invalidate invoice %s: %w (%w)", id, payment.ErrNotInvalidatable, serr)
	}
	if err != nil {
		return fmt.Errorf("btcpay: invalidate invoice %s: %w", id, err)
	}
	return nil
}

// paidSats sums what was paid through the bitcoin payment methods, in sats: in all, and by
// confirmed payments (status Settled; Complete before BTCPay 2.0). Each method's
// paymentMethodPaid counts only its own payments (totalPaid would repeat the invoice's total
// on every method). Fractions of a sat (Lightning's millisats) are dropped.
func paidSats(methods []paymentMethodData) (paid, confirmed int64, err error) {
	add := func(total *int64, amount decimal, what string) error {
		sats, err := parseDecimal(string(amount), 8, floor)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		if *total > 1<<62 || sats > 1<<62 {
			return fmt.Errorf("%s: total out of range", what)
		}
		*total += sats
		return nil
	}
	for _, m := range methods {
		currency := m.Currency
		if currency == "" {
			currency = m.CryptoCode
		}
		if currency != "BTC" || m.PaymentMethodPaid == "" {
			continue
		}
		if err := add(&paid, m.PaymentMethodPaid, "paymentMethodPaid"); err != nil {
			return 0, 0, err
		}
		for _, p := range m.Payments {
			if p.Status != "Settled" && p.Status != "Complete" {
				continue
			}
			if err := add(&confirmed, p.Value, "payment value"); err != nil {
				return 0, 0, err
			}
		}
	}
	return paid, confirmed, nil
}

// invoice converts a Greenfield invoice in SATS to Tessera's view of it.
func (d invoiceData) invoice() (payment.Invoice, error) {
	if d.ID == "" {
		return payment.Invoice{}, errors.New("response has no invoice id")
	}
	status, err := invoiceStatus(d.Status)
	if err != nil {
		return payment.Invoice{}, err
	}
	if d.Currency != "" && !strings.EqualFold(d.Currency, "SATS") {
		return payment.Invoice{}, fmt.Errorf("invoice %s is in %s, not SATS", d.ID, d.Currency)
	}
	amount, err := parseDecimal(string(d.Amount), 0, exact)
	if err != nil {
		return payment.Invoice{}, fmt.Errorf("invoice %s amount: %w", d.ID, err)
	}
	inv := payment.Invoice{
		ID: d.ID, Status: status, AmountSats: amount, CheckoutURL: d.CheckoutLink,
		OrderID: stringOrEmpty(d.Metadata.OrderID),
	}
	if d.ExpirationTime > 0 {
		inv.ExpiresAt = time.Unix(d.ExpirationTime, 0).UTC()
	}
	return inv, nil
}

// invoiceStatus maps Greenfield's invoice status.
func invoiceStatus(s string) (payment.InvoiceStatus, error) {
	switch status := payment.InvoiceStatus(s); status {
	case payment.InvoiceNew, payment.InvoiceProcessing, payment.InvoiceSettled, payment.InvoiceExpired, payment.InvoiceInvalid:
		return status, nil
	default:
		return "", fmt.Errorf("unknown invoice status %q", s)
	}
}

// storePath is the path elements of the store's resource made of parts.
func (c *Client) storePath(parts ...string) []string {
	return append([]string{"api", "v1", "stores", c.storeID}, parts...)
}

// validID refuses invoice ids that would change the request's path.
func validID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, "/?#") {
		return fmt.Errorf("invalid invoice id %q", id)
	}
	return nil
}

// statusError is a non-2xx answer from BTCPay.
type statusError struct {
	status int
	body   string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("btcpay answered %d: %s", e.status, e.body)
}

// do sends one API request and decodes a 2xx JSON answer into out. 404 wraps
// payment.ErrNotFound; other failures are plain errors.
func (c *Client) do(ctx context.Context, method string, path []string, query url.Values, body []byte, out any) error {
	u := c.base.JoinPath(path...)
	u.RawQuery = query.Encode()
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), reader)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "token "+c.apiKey)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, u.Path, err)
	}
	defer func() { _ = res.Body.Close() }() // read below: closing loses nothing
	raw, err := io.ReadAll(io.LimitReader(res.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, u.Path, err)
	}
	if res.StatusCode < 200 || res.StatusCode > 299 {
		serr := &statusError{status: res.StatusCode, body: snippet(raw)}
		if res.StatusCode == http.StatusNotFound {
			return fmt.Errorf("%s %s: %w (%w)", method, u.Path, payment.ErrNotFound, serr)
		}
		return fmt.Errorf("%s %s: %w", method, u.Path, serr)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, u.Path, err)
	}
	return nil
}

// snippet is the start of a response body, for error messages.
func snippet(b []byte) string {
	const max = 200
	s := strings.TrimSpace(string(b))
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}

// decimal is a Greenfield amount: a decimal string, also accepted as a bare JSON number.
type decimal string

// UnmarshalJSON reads a JSON string or number; null leaves it empty.
func (d *decimal) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*d = decimal(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*d = decimal(n)
	return nil
}

// stringOrEmpty is raw's value when it is a JSON string, otherwise "".
func stringOrEmpty(raw json.RawMessage) string {
	var s string
	if len(raw) == 0 || json.Unmarshal(raw, &s) != nil {
		return ""
	}
	return s
}
