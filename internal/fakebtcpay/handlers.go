package fakebtcpay

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// routes registers the API, demo and checkout endpoints.
func (s *Server) routes() {
	s.mux = http.NewServeMux()
	api := func(pattern string, h http.HandlerFunc) { s.mux.Handle(pattern, s.apiCall(h)) }
	api("POST /api/v1/stores/{storeId}/invoices", s.createInvoice)
	api("GET /api/v1/stores/{storeId}/invoices", s.searchInvoices)
	api("GET /api/v1/stores/{storeId}/invoices/{invoiceId}", s.getInvoice)
	api("GET /api/v1/stores/{storeId}/invoices/{invoiceId}/payment-methods", s.getPaymentMethods)
	api("POST /api/v1/stores/{storeId}/invoices/{invoiceId}/status", s.markInvoiceStatus)
	api("GET /api/v1/stores/{storeId}/rates", s.getRates)
	s.mux.HandleFunc("GET /fake/invoices", s.listInvoices)
	s.mux.HandleFunc("POST /fake/invoices/{invoiceId}/settle", s.demoSettle)
	s.mux.HandleFunc("POST /fake/invoices/{invoiceId}/expire", s.demoMark(s.Expire, EventInvoiceExpired))
	s.mux.HandleFunc("POST /fake/invoices/{invoiceId}/invalidate", s.demoMark(s.Invalidate, EventInvoiceInvalid))
	s.mux.HandleFunc("GET /i/{invoiceId}", s.checkout)
}

// apiCall counts the call, fails it while FailNext is set, and checks the API key and store
// as BTCPay does: 401 without a valid key, 404 for another store.
func (s *Server) apiCall(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.requests++
		fail := s.failNext > 0
		if fail {
			s.failNext--
		}
		s.mu.Unlock()
		switch {
		case fail:
			writeError(w, http.StatusServiceUnavailable, "service-unavailable", "The fake BTCPay server was told to fail this call")
		case r.Header.Get("Authorization") != "token "+s.cfg.APIKey:
			writeError(w, http.StatusUnauthorized, "unauthenticated", "Authentication is required for accessing this endpoint")
		case r.PathValue("storeId") != s.cfg.StoreID:
			writeError(w, http.StatusNotFound, "store-not-found", "The store was not found")
		default:
			next(w, r)
		}
	})
}

// createInvoice answers POST /api/v1/stores/{storeId}/invoices for SATS amounts.
func (s *Server) createInvoice(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Amount   json.Number    `json:"amount"`
		Currency string         `json:"currency"`
		Metadata map[string]any `json:"metadata"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid-request", "Invalid JSON: "+err.Error())
		return
	}
	if !strings.EqualFold(req.Currency, "SATS") {
		writeValidation(w, "currency", "The fake BTCPay server only invoices in SATS")
		return
	}
	amount, err := strconv.ParseInt(req.Amount.String(), 10, 64)
	if err != nil || amount <= 0 {
		writeValidation(w, "amount", "The amount must be a positive whole number of sats")
		return
	}
	if req.Metadata == nil {
		req.Metadata = map[string]any{}
	}
	now := s.cfg.Clock.Now()
	inv := &invoice{
		ID: newID(), Status: StatusNew, Additional: "None", AmountSats: amount, Metadata: req.Metadata,
		Created: now, Expires: now.Add(s.cfg.InvoiceExpiry),
	}
	inv.Checkout = baseURL(r) + "/i/" + inv.ID
	s.mu.Lock()
	s.invoices[inv.ID] = inv
	s.order = append(s.order, inv.ID)
	data := s.invoiceData(inv)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, data)
}

// getInvoice answers GET /api/v1/stores/{storeId}/invoices/{invoiceId}.
func (s *Server) getInvoice(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	inv, ok := s.invoices[r.PathValue("invoiceId")]
	var data map[string]any
	if ok {
		data = s.invoiceData(inv)
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "invoice-not-found", "The invoice was not found")
		return
	}
	writeJSON(w, http.StatusOK, data)
}

// markInvoiceStatus answers POST /api/v1/stores/{storeId}/invoices/{invoiceId}/status with
// {"status":"Invalid"} as BTCPay does: New, Processing and Expired invoices (and settled ones
// marked by hand) become Invalid, marked; others are a 422 validation error. Marking an
// invoice settled is not part of the fake.
func (s *Server) markInvoiceStatus(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Status string `json:"status"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid-request", "Invalid JSON: "+err.Error())
		return
	}
	if req.Status != StatusInvalid {
		writeValidation(w, "status", "The fake BTCPay server only marks invoices Invalid")
		return
	}
	id := r.PathValue("invoiceId")
	err := s.MarkInvalid(id)
	switch {
	case errors.Is(err, ErrNotFound):
		writeError(w, http.StatusNotFound, "invoice-not-found", "The invoice was not found")
		return
	case err != nil:
		writeValidation(w, "status", "Status can only be marked to invalid or settled within certain conditions.")
		return
	}
	s.mu.Lock()
	data := s.invoiceData(s.invoices[id])
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, data)
}

// searchInvoices answers GET /api/v1/stores/{storeId}/invoices: the invoices whose
// metadata.orderId is one of the orderId parameters (all without one), newest first, at
// most take of them.
func (s *Server) searchInvoices(w http.ResponseWriter, r *http.Request) {
	orders := r.URL.Query()["orderId"]
	take, err := strconv.Atoi(r.URL.Query().Get("take"))
	if err != nil || take <= 0 {
		take = math.MaxInt
	}
	s.mu.Lock()
	found := []map[string]any{}
	for i := len(s.order) - 1; i >= 0 && len(found) < take; i-- {
		inv := s.invoices[s.order[i]]
		if order, _ := inv.Metadata["orderId"].(string); len(orders) == 0 || slices.Contains(orders, order) {
			found = append(found, s.invoiceData(inv))
		}
	}
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, found)
}

// invoiceData is an invoice as Greenfield's InvoiceData. The caller holds s.mu.
func (s *Server) invoiceData(inv *invoice) map[string]any {
	return map[string]any{
		"id":                                inv.ID,
		"storeId":                           s.cfg.StoreID,
		"amount":                            formatSats(inv.AmountSats),
		"currency":                          "SATS",
		"type":                              "Standard",
		"checkoutLink":                      inv.Checkout,
		"status":                            inv.Status,
		"additionalStatus":                  inv.Additional,
		"createdTime":                       inv.Created.Unix(),
		"expirationTime":                    inv.Expires.Unix(),
		"monitoringExpiration":              inv.Expires.Add(s.cfg.InvoiceExpiry).Unix(),
		"archived":                          false,
		"metadata":                          inv.Metadata,
		"availableStatusesForManualMarking": []string{StatusSettled, StatusInvalid},
	}
}

// getPaymentMethods answers GET .../invoices/{invoiceId}/payment-methods with one on-chain
// BTC payment method holding everything paid and its payments (status Settled when
// confirmed, Processing before), amounts in BTC.
func (s *Server) getPaymentMethods(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	inv, ok := s.invoices[r.PathValue("invoiceId")]
	var amount, paid int64
	payments := []map[string]any{}
	if ok {
		amount, paid = inv.AmountSats, inv.PaidSats
		for i, p := range inv.Payments {
			status := StatusProcessing
			if p.Settled {
				status = StatusSettled
			}
			payments = append(payments, map[string]any{
				"id": fmt.Sprintf("%s-%d", inv.ID, i), "receivedDate": inv.Created.Unix(), "value": btc(p.Sats),
				"fee": "0.00000000", "status": status, "destination": "bcrt1qfakefakefakefakefakefakefakefakefake",
			})
		}
	}
	s.mu.Unlock()
	if !ok {
		writeError(w, http.StatusNotFound, "invoice-not-found", "The invoice was not found")
		return
	}
	writeJSON(w, http.StatusOK, []map[string]any{{
		"paymentMethodId":   "BTC-CHAIN",
		"paymentMethod":     "BTC",
		"currency":          "BTC",
		"cryptoCode":        "BTC",
		"destination":       "bcrt1qfakefakefakefakefakefakefakefakefake",
		"rate":              "0.00000001",
		"amount":            btc(amount),
		"paymentMethodPaid": btc(paid),
		"totalPaid":         btc(paid),
		"due":               btc(amount - paid),
		"networkFee":        "0.00000000",
		"payments":          payments,
	}})
}

// btc writes sats as a BTC decimal string with 8 places: 50000 is "0.00050000".
func btc(sats int64) string {
	sign := ""
	if sats < 0 {
		sign, sats = "-", -sats
	}
	return fmt.Sprintf("%s%d.%08d", sign, sats/100_000_000, sats%100_000_000)
}

// getRates answers GET /api/v1/stores/{storeId}/rates?currencyPair=BTC_USD (repeatable, or
// comma-separated); without currencyPair it lists every configured rate.
func (s *Server) getRates(w http.ResponseWriter, r *http.Request) {
	var pairs []string
	for _, v := range r.URL.Query()["currencyPair"] {
		pairs = append(pairs, strings.Split(v, ",")...)
	}
	if len(pairs) == 0 {
		for _, c := range s.sortedCurrencies() {
			pairs = append(pairs, "BTC_"+c)
		}
	}
	results := make([]map[string]any, 0, len(pairs))
	for _, pair := range pairs {
		currency, ok := strings.CutPrefix(pair, "BTC_")
		rate, known := s.cfg.Rates[currency]
		if ok && known {
			results = append(results, map[string]any{"currencyPair": pair, "errors": []string{}, "rate": rate})
			continue
		}
		results = append(results, map[string]any{
			"currencyPair": pair, "rate": nil,
			"errors": []string{"The fake BTCPay server has no rate for " + pair},
		})
	}
	writeJSON(w, http.StatusOK, results)
}

// listInvoices answers GET /fake/invoices.
func (s *Server) listInvoices(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Invoices())
}

// demoResult is what the demo endpoints answer.
type demoResult struct {
	Invoice       Invoice `json:"invoice"`
	WebhookStatus int     `json:"webhookStatus,omitempty"`
	WebhookError  string  `json:"webhookError,omitempty"`
}

// demoSettle answers POST /fake/invoices/{invoiceId}/settle[?sats=N]: it settles the invoice
// with N sats (default: its amount) and sends InvoiceSettled.
func (s *Server) demoSettle(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("invoiceId")
	inv, err := s.Invoice(id)
	if err != nil {
		writeError(w, http.StatusNotFound, "invoice-not-found", err.Error())
		return
	}
	sats := inv.AmountSats
	if v := r.FormValue("sats"); v != "" {
		if sats, err = strconv.ParseInt(v, 10, 64); err != nil || sats < 0 {
			writeValidation(w, "sats", "sats must be a whole number of sats, at least 0")
			return
		}
	}
	s.demoMark(func(id string) error { return s.Settle(id, sats) }, EventInvoiceSettled)(w, r)
}

// demoMark is a demo endpoint applying mark to the invoice and sending eventType.
func (s *Server) demoMark(mark func(id string) error, eventType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("invoiceId")
		switch err := mark(id); {
		case errors.Is(err, ErrNotFound):
			writeError(w, http.StatusNotFound, "invoice-not-found", err.Error())
			return
		case err != nil:
			writeError(w, http.StatusConflict, "invalid-state", err.Error())
			return
		}
		var result demoResult
		if s.cfg.WebhookURL != "" {
			statuses, err := s.SendWebhook(id, eventType, 1)
			if err != nil {
				result.WebhookError = err.Error()
			} else {
				result.WebhookStatus = statuses[0]
			}
		}
		inv, err := s.Invoice(id)
		if err != nil {
			writeError(w, http.StatusInternalServerError, "internal-error", err.Error())
			return
		}
		result.Invoice = inv
		if r.FormValue("redirect") != "" {
			http.Redirect(w, r, "/i/"+id, http.StatusSeeOther)
			return
		}
		writeJSON(w, http.StatusOK, result)
	}
}

// checkoutPage is the minimal checkout page.
var checkoutPage = template.Must(template.New("checkout").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>Fake BTCPay invoice {{.ID}}</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto">
<h1>Fake BTCPay invoice</h1>
<p>This is a fake BTCPay Server for development: no bitcoin moves.</p>
<table>
<tr><th align="left">Invoice</th><td><code>{{.ID}}</code></td></tr>
<tr><th align="left">Order</th><td><code>{{.OrderID}}</code></td></tr>
<tr><th align="left">Amount</th><td>{{.AmountSats}} sats</td></tr>
<tr><th align="left">Status</th><td><strong>{{.Status}}</strong> ({{.AdditionalStatus}})</td></tr>
<tr><th align="left">Paid</th><td>{{.PaidSats}} sats</td></tr>
<tr><th align="left">Expires</th><td>{{.ExpiresAt.Format "2006-01-02 15:04:05 MST"}}</td></tr>
</table>
{{if or (eq .Status "New") (eq .Status "Processing")}}
<form method="post" action="/fake/invoices/{{.ID}}/settle">
<input type="hidden" name="redirect" value="1">
<label>Sats paid <input name="sats" value="{{.AmountSats}}" size="12"></label>
<button type="submit">Mark paid</button>
</form>
<form method="post" action="/fake/invoices/{{.ID}}/expire">
<input type="hidden" name="redirect" value="1"><button type="submit">Expire</button>
</form>
{{end}}
</body></html>
`))

// checkout answers GET /i/{invoiceId}: the invoice's checkout page.
func (s *Server) checkout(w http.ResponseWriter, r *http.Request) {
	inv, err := s.Invoice(r.PathValue("invoiceId"))
	if err != nil { //lint:swallow Invoice fails only with ErrNotFound
		http.Error(w, "invoice not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := checkoutPage.Execute(w, inv); err != nil {
		http.Error(w, "render checkout page: "+err.Error(), http.StatusInternalServerError)
	}
}

// baseURL is the scheme and host the request reached the server on.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// writeJSON writes v as a JSON answer.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client may be gone; nothing to do about it
}

// writeError writes a Greenfield error: {"code": ..., "message": ...}.
func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]string{"code": code, "message": message})
}

// writeValidation writes a Greenfield validation error (422).
func writeValidation(w http.ResponseWriter, path, message string) {
	writeJSON(w, http.StatusUnprocessableEntity, []map[string]string{{"path": path, "message": message}})
}
