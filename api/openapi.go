package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/yaml"
)

// Names of the shared parameters and response headers in the document's components.
const (
	paramIdempotencyKey    = "IdempotencyKey"
	paramRequestID         = "RequestId"
	headerRequestID        = "X-Request-Id"
	headerRetryAfter       = "Retry-After"
	componentRefParameters = "#/components/parameters/"
	componentRefHeaders    = "#/components/headers/"
)

// problemContentType is the Content-Type of every error answer (RFC 9457).
const problemContentType = "application/problem+json"

// metadataNoDatabase marks an operation that never reads the database, so never answers 503.
const metadataNoDatabase = "noDatabase"

// defaultMaxBodyBytes is the body limit of an operation that sets none: Huma's, which
// screenBody applies.
const defaultMaxBodyBytes = 1 << 20

// openAPITags describes every tag the operations use, in the order the document lists them.
func openAPITags() []*huma.Tag {
	return []*huma.Tag{
		{Name: "Health", Description: "Liveness and readiness probes for load balancers and orchestrators. Public."},
		{Name: "Tenant", Description: "The tenant of the API key, and any tenant's public licence-signing key (public), which verifies licence keys offline."},
		{Name: "API keys", Description: "A tenant's admin API keys: create (the secret is shown once), list and revoke."},
		{Name: "Audit log", Description: "Every admin write of a tenant: who made it, when, and what changed."},
		{Name: "Products", Description: "What a tenant sells, and the releases of each product."},
		{Name: "Policies", Description: "The tiers of a product: price, billing period, machine limit; every licence is issued under one."},
		{Name: "Add-ons", Description: "Extras bought with a policy, which licences carry as entitlements."},
		{Name: "Customers", Description: "A tenant's buyers: contact details, referrer, custodial balances and auto-pay of renewals."},
		{Name: "Customer events", Description: "What customers did (purchases, activity), recorded one by one or in batches; referrals qualify on them."},
		{Name: "Licences", Description: "Licence keys: issue, read, list, suspend, reinstate and revoke; imported licences' upstream checks."},
		{Name: "Machines", Description: "Machines activated on a licence, within its policy's limit; buyers activate and deactivate with their licence key."},
		{Name: "Subscriptions", Description: "Licences renewed every billing period: start, cancel, and the renewals that stopped at the failure cap."},
		{Name: "Tier changes", Description: "Moving a licence to another policy: prorated paid upgrades, downgrades at the next renewal, admin moves."},
		{Name: "Validation", Description: "Checking a licence key online: the answer a product asks for at start. Public, rate limited per key and per client."},
		{Name: "Payments", Description: "Buying a licence (purchase) and its PayIn (the payment of a purchase, renewal or upgrade through the payment provider), credits, statistics and the provider's webhooks."},
		{Name: "Webhooks", Description: "Endpoints that receive Tessera's signed events, and their deliveries with retries; the webhooks section of the document describes each event a receiver gets."},
		{Name: "Referrals", Description: "Referral settings, each customer's qualified referrals and reward, and the leaderboard."},
		{Name: "Upstream stores", Description: "External stores whose licences Tessera imports and re-checks, revoking those the store no longer knows."},
		{Name: "Revocation", Description: "The queue of imported licences the revocation check loop will check next, and why."},
		{Name: "Sandbox", Description: "A sandbox tenant's own clock, moved only forward by advances that run everything falling due on the way (renewals, invoice expiries, lapses, licence expiries), its checkout, where its invoices are paid without a payment provider, and its data: reset it (delete everything but the tenant and its keys, restarting its clock anywhere) or clone it into a new sandbox tenant. Live tenants are refused."},
		{Name: "Jobs", Description: "The tenant's background jobs (River): list, read, retry and cancel them; cross-tenant sweeps are the operator's (River UI, tessera jobs)."},
	}
}

// describeContract completes the document with what Huma does not derive from the
// operations: the servers, the tags' descriptions, the headers every request may send and
// every answer carries (X-Request-Id, Idempotency-Key and Idempotent-Replayed on the writes
// transact makes idempotent, Retry-After on 503 and 429), the answers middleware gives
// (400, 413, 415, the in-flight 409 and the key-reuse 422 of Idempotency-Key, 503 while the
// database is unreachable), and an explicit empty security on public operations.
func describeContract(doc *huma.OpenAPI) {
	doc.Servers = []*huma.Server{{URL: "/", Description: "The Tessera that serves this document."}}
	doc.Tags = openAPITags()
	c := doc.Components
	if c.Parameters == nil {
		c.Parameters = map[string]*huma.Param{}
	}
	c.Parameters[paramIdempotencyKey] = &huma.Param{
		Name: headerIdempotencyKey, In: "header",
		Description: "Makes the write safe to retry: the same key with the same request replays the first successful answer " +
			"(with `Idempotent-Replayed: true`) for 24 hours by default; with another request it is 422; while the first request runs it is 409. " +
			"Error answers are not stored. 1 to 255 printable ASCII characters without spaces (400 otherwise).",
		Schema:  &huma.Schema{Type: "string", MinLength: ptr(1), MaxLength: ptr(255), Pattern: "^[!-~]+$"},
		Example: "3f2c8a4e-order-1042",
	}
	c.Parameters[paramRequestID] = &huma.Param{
		Name: headerRequestID, In: "header",
		Description: "Your id of the request, echoed in the answer's X-Request-Id and logged; when missing or not 1 to 128 " +
			"printable ASCII characters without spaces, Tessera makes one.",
		Schema:  &huma.Schema{Type: "string", MinLength: ptr(1), MaxLength: ptr(128)},
		Example: "req-7c1e",
	}
	if c.Headers == nil {
		c.Headers = map[string]*huma.Header{}
	}
	c.Headers[headerRequestID] = &huma.Header{
		Description: "The request's id (the caller's X-Request-Id, or one Tessera made); quote it when reporting a problem.",
		Required:    true,
		Schema:      &huma.Schema{Type: "string"},
		Example:     "0192f3a4-5b6c-7d8e-9f00-112233445566",
	}
	c.Headers[headerReplayed] = &huma.Header{
		Description: "Present, `true`, when the answer is the stored answer of an earlier request with the same Idempotency-Key.",
		Schema:      &huma.Schema{Type: "string", Enum: []any{"true"}},
		Example:     "true",
	}
	c.Headers[headerRetryAfter] = &huma.Header{
		Description: "Seconds to wait before retrying.",
		Required:    true,
		Schema:      &huma.Schema{Type: "integer", Minimum: ptr(0.0)},
		Example:     2,
	}
	// The schema of error answers, found as Huma finds it for the errors operations declare.
	errType := reflect.TypeOf(huma.NewError(0, ""))
	if errType.Kind() == reflect.Pointer {
		errType = errType.Elem()
	}
	errorSchema := c.Schemas.Schema(errType, true, "Error")
	for _, item := range doc.Paths {
		for method, op := range map[string]*huma.Operation{
			http.MethodGet: item.Get, http.MethodPost: item.Post, http.MethodPut: item.Put,
			http.MethodPatch: item.Patch, http.MethodDelete: item.Delete,
		} {
			if op != nil {
				describeOperation(op, method, errorSchema)
			}
		}
	}
}

// describeOperation adds to op what describeContract promises.
func describeOperation(op *huma.Operation, method string, errorSchema *huma.Schema) {
	if len(op.Security) == 0 {
		op.Security = []map[string][]string{} // published as security: [], public on purpose
	}
	// addError documents an answer; when the operation documents the status already for
	// its own reasons (Huma describes it by the status text alone), it says both.
	addError := func(status int, description string) {
		code := strconv.Itoa(status)
		if existing, ok := op.Responses[code]; ok {
			existing.Description += " (the problem's detail says why), or: " + description
			return
		}
		op.Responses[code] = &huma.Response{
			Description: description,
			Content:     map[string]*huma.MediaType{problemContentType: {Schema: errorSchema}},
		}
	}

	if paginated(op) {
		if op.Description != "" {
			op.Description += "\n\n"
		}
		op.Description += pagination
	}
	op.Parameters = append(op.Parameters, &huma.Param{Ref: componentRefParameters + paramRequestID})
	idempotent := honoursIdempotencyKey(op, method)
	if idempotent {
		op.Parameters = append(op.Parameters, &huma.Param{Ref: componentRefParameters + paramIdempotencyKey})
		addError(http.StatusConflict, "A request with this Idempotency-Key is still in progress: retry it later.")
		addError(http.StatusUnprocessableEntity, "This Idempotency-Key was used with a different request.")
	}
	var badRequest []string
	if isWrite(op, method) {
		badRequest = append(badRequest, "an invalid Idempotency-Key")
	}
	if op.RequestBody != nil {
		limit := op.MaxBodyBytes
		if limit <= 0 {
			limit = defaultMaxBodyBytes
		}
		addError(http.StatusRequestEntityTooLarge, fmt.Sprintf("The request body is larger than %d bytes.", limit))
		if structuredBody(op) {
			badRequest = append([]string{"malformed JSON", "a missing body"}, badRequest...)
			addError(http.StatusUnsupportedMediaType, "The request body's Content-Type is not JSON (send application/json).")
		}
	}
	if len(badRequest) > 0 {
		addError(http.StatusBadRequest, "Bad Request: "+joinOr(badRequest)+".")
	}
	if noDB, _ := op.Metadata[metadataNoDatabase].(bool); !noDB {
		retry := "The database is unreachable (a restart, an outage), or aborted the request to break a deadlock with a concurrent one: retry after Retry-After seconds."
		if idempotent {
			retry = "The database is unreachable (a restart, an outage), or aborted the request to break a deadlock with a concurrent one: retry after Retry-After seconds, with the same Idempotency-Key."
		}
		addError(http.StatusServiceUnavailable, retry)
	}

	for code, res := range op.Responses {
		if res.Headers == nil {
			res.Headers = map[string]*huma.Header{}
		}
		res.Headers[headerRequestID] = &huma.Header{Ref: componentRefHeaders + headerRequestID}
		status, _ := strconv.Atoi(code)
		switch {
		case idempotent && status >= 200 && status < 300:
			res.Headers[headerReplayed] = &huma.Header{Ref: componentRefHeaders + headerReplayed}
		case status == http.StatusServiceUnavailable, status == http.StatusTooManyRequests:
			res.Headers[headerRetryAfter] = &huma.Header{Ref: componentRefHeaders + headerRetryAfter}
		}
	}
}

// pagination describes the cursor pagination of every list operation (PageParams).
const pagination = "Pages by cursor: up to `limit` items (default 50, at most 200); the answer's `next_cursor`, " +
	"passed as `after`, gives the next page, and is absent on the last page."

// paginated reports whether op takes PageParams: an `after` query parameter.
func paginated(op *huma.Operation) bool {
	for _, p := range op.Parameters {
		if p.In == "query" && p.Name == "after" {
			return true
		}
	}
	return false
}

// isWrite reports whether transact runs op in a transaction: a POST, PUT, PATCH or DELETE
// not marked read-only or as opening its own transactions (transacted).
func isWrite(op *huma.Operation, method string) bool {
	if !transacted(op) {
		return false
	}
	switch method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// honoursIdempotencyKey reports whether transact makes op idempotent when it carries an
// Idempotency-Key: a write that has a scope for its keys, an admin key's tenant or the
// tenant a buyer operation names (idempotencyScopeOf).
func honoursIdempotencyKey(op *huma.Operation, method string) bool {
	if !isWrite(op, method) {
		return false
	}
	required, optional := adminKeyRule(op)
	_, buyer := op.Metadata[metadataBuyerTenant].(buyerTenant)
	return required || optional || buyer
}

// structuredBody reports whether Huma decodes op's request body itself (a schema of the
// document, rather than a raw body the handler reads), so that it answers 400 to malformed
// JSON and 415 to a Content-Type it cannot decode.
func structuredBody(op *huma.Operation) bool {
	for _, media := range op.RequestBody.Content {
		if media.Schema != nil && media.Schema.Ref != "" {
			return true
		}
	}
	return false
}

// joinOr joins phrases as "a, b or c".
func joinOr(phrases []string) string {
	switch len(phrases) {
	case 0:
		return ""
	case 1:
		return phrases[0]
	}
	out := phrases[0]
	for _, p := range phrases[1 : len(phrases)-1] {
		out += ", " + p
	}
	return out + " or " + phrases[len(phrases)-1]
}

// ptr returns a pointer to v.
func ptr[T any](v T) *T { return &v }

// registerDocuments serves the OpenAPI document at /openapi.json and /openapi.yaml (3.1)
// and /openapi-3.0.json and /openapi-3.0.yaml (3.0), each rendered once, at its first
// request. Huma's own routes serve Huma's 3.0 downgrade, which Document30 corrects.
func (s *Server) registerDocuments() {
	doc := s.api.OpenAPI()
	serve := func(path, contentType string, render func() ([]byte, error)) {
		rendered := sync.OnceValues(render)
		s.mux.HandleFunc("GET "+path, func(w http.ResponseWriter, r *http.Request) {
			body, err := rendered()
			if err != nil {
				requestInfoFrom(r.Context()).logger().ErrorContext(r.Context(), "render the OpenAPI document", "path", path, "error", err)
				writeProblem(w, newProblem(CodeInternal, "the OpenAPI document could not be rendered"))
				return
			}
			w.Header().Set("Content-Type", contentType)
			_, _ = w.Write(body) // a client gone away is nothing to report
		})
	}
	serve("/openapi.json", "application/openapi+json", doc.MarshalJSON)
	serve("/openapi.yaml", "application/openapi+yaml", doc.YAML)
	serve("/openapi-3.0.json", "application/openapi+json", func() ([]byte, error) { return Document30(doc) })
	serve("/openapi-3.0.yaml", "application/openapi+yaml", func() ([]byte, error) {
		b, err := Document30(doc)
		if err != nil {
			return nil, err
		}
		var out bytes.Buffer
		if err := yaml.Convert(&out, bytes.NewReader(b)); err != nil {
			return nil, fmt.Errorf("convert the OpenAPI 3.0 document to YAML: %w", err)
		}
		return out.Bytes(), nil
	})
}

// Document30 renders doc as OpenAPI 3.0: Huma's downgrade, less what 3.0 does not have —
// the webhooks section (the 3.1 document publishes the events) — or ignores beside a $ref
// (a description on a property whose schema is a reference, which 3.1 allows): the 3.0
// specification says such siblings are ignored, and its linters refuse them.
func Document30(doc *huma.OpenAPI) ([]byte, error) {
	withoutWebhooks := *doc
	withoutWebhooks.Webhooks = nil
	b, err := withoutWebhooks.Downgrade()
	if err != nil {
		return nil, fmt.Errorf("downgrade the OpenAPI document: %w", err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("read the downgraded OpenAPI document: %w", err)
	}
	dropRefSiblings(v)
	dropUnreachableSchemas(v)
	return json.Marshal(v)
}

// dropUnreachableSchemas removes the component schemas nothing outside the schemas reaches,
// directly or through other schemas: in 3.0, the webhooks' envelopes and event payloads.
func dropUnreachableSchemas(doc any) {
	root, _ := doc.(map[string]any)
	components, _ := root["components"].(map[string]any)
	schemas, _ := components["schemas"].(map[string]any)
	if schemas == nil {
		return
	}
	const prefix = "#/components/schemas/"
	reached := map[string]bool{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok && strings.HasPrefix(ref, prefix) {
				if name := strings.TrimPrefix(ref, prefix); !reached[name] {
					reached[name] = true
					walk(schemas[name])
				}
			}
			for _, child := range v {
				walk(child)
			}
		case []any:
			for _, child := range v {
				walk(child)
			}
		}
	}
	for key, v := range root {
		if key != "components" {
			walk(v)
		}
	}
	for key, v := range components {
		if key != "schemas" {
			walk(v)
		}
	}
	for name := range schemas {
		if !reached[name] {
			delete(schemas, name)
		}
	}
}

// dropRefSiblings removes, everywhere in v, the keys beside a $ref.
func dropRefSiblings(v any) {
	switch v := v.(type) {
	case map[string]any:
		if ref, ok := v["$ref"]; ok {
			clear(v)
			v["$ref"] = ref
			return
		}
		for _, child := range v {
			dropRefSiblings(child)
		}
	case []any:
		for _, child := range v {
			dropRefSiblings(child)
		}
	}
}
