// Package upstream is Tessera's side of external stores that sell a tenant's licences
// (SPEC 5): the Jinxxy-style HTTP client that asks a store whether a licence still exists,
// the transactional steps that connect stores, import their licences and record checks,
// and the weights of the risk score that orders the checks.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/tessera/tessera/internal/outbound"
)

// Outcome is what a check found, as upstream_license_checks records it.
type Outcome string

// The outcomes of a check.
const (
	// OutcomeExists: the store answered 200, the licence is still there.
	OutcomeExists Outcome = "exists"
	// OutcomeGone: the store answered 404 or 403, the licence was removed or refunded.
	OutcomeGone Outcome = "gone"
	// OutcomeError: no usable answer (another status, a timeout, a network error); it is not
	// a revocation.
	OutcomeError Outcome = "error"
)

// Result is one check's answer.
type Result struct {
	Outcome Outcome
	// Status is the HTTP status the store answered with; 0 when there was no answer.
	Status int
	// Err describes an error outcome; empty otherwise.
	Err string
}

// Client asks Jinxxy-style stores about licences: GET {base}/licenses/{id} with the store's
// key in x-api-key. It is safe for concurrent use.
type Client struct {
	http    *http.Client
	timeout time.Duration
}

// NewClient returns a client whose requests each take at most timeout (from connecting to
// reading the answer's status). A nil httpClient is outbound.Client(false): no redirects,
// and no connections to addresses that are not public.
func NewClient(httpClient *http.Client, timeout time.Duration) (*Client, error) {
	if timeout <= 0 {
		return nil, errors.New("upstream: timeout must be positive")
	}
	if httpClient == nil {
		httpClient = outbound.Client(false)
	}
	return &Client{http: httpClient, timeout: timeout}, nil
}

// maxErrorLen bounds a recorded error, in bytes.
const maxErrorLen = 500

// CheckParams is what one check asks a store: whether it still knows licence
// ExternalLicenseID, at BaseURL with APIKey.
type CheckParams struct {
	BaseURL           string
	APIKey            string
	ExternalLicenseID string
}

// Check asks the store at p.BaseURL whether the licence p.ExternalLicenseID still exists.
// It never returns an error: every failure is an OutcomeError result.
func (c *Client) Check(ctx context.Context, p CheckParams) Result {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	target := strings.TrimRight(p.BaseURL, "/") + "/licenses/" + url.PathEscape(p.ExternalLicenseID)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return errorResult(0, fmt.Sprintf("build request: %v", err))
	}
	req.Header.Set("x-api-key", p.APIKey)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "Tessera-Upstream/1")
	res, err := c.http.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return errorResult(0, fmt.Sprintf("no answer within %s", c.timeout))
		}
		return errorResult(0, fmt.Sprintf("request failed: %v", err))
	}
	defer func() { _ = res.Body.Close() }()                      // drained below: closing loses nothing
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10)) // lets the connection be reused
	switch res.StatusCode {
	case http.StatusOK:
		return Result{Outcome: OutcomeExists, Status: res.StatusCode}
	case http.StatusNotFound, http.StatusForbidden:
		return Result{Outcome: OutcomeGone, Status: res.StatusCode}
	}
	return errorResult(res.StatusCode, fmt.Sprintf("unexpected status %d", res.StatusCode))
}

func errorResult(status int, msg string) Result {
	if len(msg) > maxErrorLen {
		msg = msg[:maxErrorLen]
	}
	return Result{Outcome: OutcomeError, Status: status, Err: msg}
}
