package api_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/btcpay"
	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// Bounds every answer must keep, whatever the request.
const (
	hostileMaxError    = 64 << 10         // bytes of an error body
	hostileMaxDuration = 10 * time.Second // per request, with the race detector on a busy machine
	hostileMaxFindings = 30               // distinct findings reported before the walk stops
)

// TestHostile walks every operation of Tessera's own OpenAPI document (as served at
// /openapi.json) against a real server and database with real fixtures, sending valid
// requests built from each operation's schemas and hostile variants of them: wrong types,
// missing and extra fields, NUL, lone surrogates, invalid UTF-8, huge and empty strings, huge
// and negative numbers, repeated, nested and mixed array items, deep nesting, bad path and
// query parameters, wrong content types and hostile headers, with and without the admin key.
// Every answer must be below 500; every error problem+json; every 2xx valid against the
// schema documented for its status; every answer bounded in size and time.
//
// Nothing in it names an operation: a new operation is walked as soon as it is registered.
// Ids in paths and bodies are found by parameter name (an {id} after /products/ is an
// existing product, a policy_id an existing policy) from the list operations.
//
// It first replays the corpus in testdata/hostile (requests that found bugs), then walks
// TESSERA_HOSTILE_REQUESTS requests (default 2500) from TESSERA_HOSTILE_SEED (default:
// the clock; the seed is logged). A finding prints the corpus entry that replays it.
// TESSERA_HOSTILE_VERBOSE=1 logs why valid requests were refused, to see what the walk reaches.
func TestHostile(t *testing.T) {
	t.Parallel()
	seed := uint64(clock.System{}.Now().UnixNano())
	if s := os.Getenv("TESSERA_HOSTILE_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "TESSERA_HOSTILE_SEED")
	}
	count := 2500
	if s := os.Getenv("TESSERA_HOSTILE_REQUESTS"); s != "" {
		var err error
		count, err = strconv.Atoi(s)
		require.NoError(t, err, "TESSERA_HOSTILE_REQUESTS")
	}
	t.Logf("hostile walk: %d requests from seed %d (replay with TESSERA_HOSTILE_SEED=%d)", count, seed, seed)

	w := newWalker(t, seed)
	w.replayCorpus()
	w.walk(count)
	var never []string
	for _, op := range w.ops {
		if w.succeeded[op.id] == 0 {
			never = append(never, op.id)
		}
	}
	t.Logf("hostile walk: %d requests sent over %d operations, %d findings; operations never answered 2xx: %v",
		w.sent, len(w.ops), len(w.findings), never)
}

// hostileRequest is one request of the walk, as stored in the corpus: fixture values are
// placeholders ({{key}}, {{id:products}}, {{admin_key}}, {{signature}}) filled in at send.
type hostileRequest struct {
	Operation  string            `json:"operation"`
	Variant    string            `json:"variant"`
	Found      string            `json:"found,omitempty"` // in the corpus: what it found
	Method     string            `json:"method"`
	Path       string            `json:"path"` // escaped, with the query
	Header     map[string]string `json:"header,omitempty"`
	Body       string            `json:"body,omitempty"`
	BodyBase64 string            `json:"body_base64,omitempty"` // a body that is not UTF-8
}

func (r *hostileRequest) setBody(b []byte) {
	r.Body, r.BodyBase64 = "", ""
	if utf8.Valid(b) {
		r.Body = string(b)
	} else {
		r.BodyBase64 = base64.StdEncoding.EncodeToString(b)
	}
}

func (r hostileRequest) body(t *testing.T) []byte {
	if r.BodyBase64 == "" {
		return []byte(r.Body)
	}
	b, err := base64.StdEncoding.DecodeString(r.BodyBase64)
	require.NoError(t, err)
	return b
}

// walkOperation is an operation of the document, as the walker uses it.
type walkOperation struct {
	id, method, path string
	params           []map[string]any // path, query and header parameters
	mediaType        string           // of the request body; empty when there is none
	body             schema
	adminKey         string // "required", "optional" or ""
}

type walker struct {
	t         *testing.T
	b         *bundle
	srv       *httptest.Server
	rng       *rand.Rand
	gen       *generator
	fixtures  *fixtures
	validator validator.Validator
	ops       []walkOperation
	secret    []byte
	rawBodies map[string]func() any // raw (non-JSON-schema) request bodies by media type

	verbose   bool // TESSERA_HOSTILE_VERBOSE: log why valid requests were refused
	sent      int
	succeeded map[string]int // 2xx answers by operation id
	findings  map[string]bool
}

// fixtures are the existing things the walker's requests name.
type fixtures struct {
	values map[string]string // placeholder name → value
	// alternatives are the placeholders a property or parameter name may take, "" for a
	// generated value (a new fingerprint as well as the active one); a name without
	// alternatives takes its own placeholder.
	alternatives map[string][]string
	ids          map[string]string // collection (the path segment before an id) → an existing id
	skip         map[string]bool   // ids never named (the walker's own API key)
}

// byName returns the placeholder for a property or parameter called name: a named fixture,
// or an existing id for X_id (X's collection).
func (f *fixtures) byName(name string, rng *rand.Rand) (string, bool) {
	if alternatives, ok := f.alternatives[name]; ok {
		choice := alternatives[rng.IntN(len(alternatives))]
		return "{{" + choice + "}}", choice != ""
	}
	if _, ok := f.values[name]; ok {
		return "{{" + name + "}}", true
	}
	stem, ok := strings.CutSuffix(name, "_id")
	if !ok {
		return "", false
	}
	stem = strings.TrimSuffix(stem, "y")
	collections := make([]string, 0, len(f.ids))
	for c := range f.ids {
		collections = append(collections, c)
	}
	slices.Sort(collections)
	for _, c := range collections {
		if strings.Contains(c, stem) {
			return "{{id:" + c + "}}", true
		}
	}
	return "", false
}

func newWalker(t *testing.T, seed uint64) *walker {
	t.Helper()
	pool, _ := testdb.Clone(t)
	b := newBundle(t, pool)
	srv := httptest.NewServer(b.handler)
	t.Cleanup(srv.Close)
	srv.Client().Timeout = time.Minute

	w := &walker{
		t: t, b: b, srv: srv, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		secret:   []byte(b.payments.WebhookSecret),
		findings: map[string]bool{}, succeeded: map[string]int{}, verbose: os.Getenv("TESSERA_HOSTILE_VERBOSE") != "",
		fixtures: &fixtures{values: map[string]string{}, ids: map[string]string{}, skip: map[string]bool{}},
	}

	// The document, as served.
	res := b.send(t, srv, http.MethodGet, "/openapi.json", "")
	require.Equal(t, http.StatusOK, res.status)
	var doc map[string]any
	require.NoError(t, json.Unmarshal(res.body, &doc))
	w.gen = &generator{doc: doc, rng: w.rng, fixtures: w.fixtures}
	model, err := libopenapi.NewDocument(res.body)
	require.NoError(t, err)
	v, errs := validator.NewValidator(model)
	require.Empty(t, errs)
	w.validator = v
	w.ops = operations(doc)
	require.NotEmpty(t, w.ops)

	w.fixtures.skip[b.keyID.String()] = true
	w.fixtures.ids["tenants"] = b.tenant.Slug
	w.seed(0)

	// A raw body has no schema to build from: the provider webhook gets a real event, whose
	// fields are then mutated like any JSON body's and which is signed when the operation
	// takes a signature header.
	w.rawBodies = map[string]func() any{
		"application/octet-stream": func() any {
			return map[string]any{
				"deliveryId": uuid.NewString(), "webhookId": "walker", "type": "InvoiceSettled",
				"invoiceId": "walker-invoice", "storeId": "store-test", "timestamp": json.Number("1767225600"),
				"metadata": map[string]any{"orderId": uuid.NewString()},
			}
		},
	}
	return w
}

// seed makes a fresh set of fixtures (round numbers their slugs), as the walk archives,
// revokes and cancels the ones before: a catalogue (a recurring "pro" tier and a higher
// "plus" one), a customer with subscriptions to both and one referred by them, an admin-issued
// plus licence without a subscription (the newest licence, the one ids name first), another
// API key, a webhook endpoint, an upstream store; then a purchase and a machine through the
// API.
func (w *walker) seed(round int) {
	t, b, db := w.t, w.b, w.b.db
	tenant := b.tenant
	product := factory.Product(t, db, tenant.ID)
	policy := factory.Policy(t, db, tenant.ID, factory.PolicyProduct(product.ID), factory.PolicySlug(fmt.Sprintf("pro-%d", round)),
		factory.PolicyRecurring(30), factory.PolicyPrice(sql.CurrencyUSD, 7500), factory.PolicyEntitlements("export"),
		factory.PolicyMaxMachines(1000), factory.PolicyQualifiesForReferrals())
	plus := factory.Policy(t, db, tenant.ID, factory.PolicyProduct(product.ID), factory.PolicySlug(fmt.Sprintf("plus-%d", round)),
		factory.PolicyRecurring(30), factory.PolicyPrice(sql.CurrencyUSD, 9000), factory.PolicyTierRank(2))
	factory.Addon(t, db, tenant.ID)
	factory.ProductRelease(t, db, tenant.ID, product.ID, "1.0.0", factory.Now)
	customer := factory.Customer(t, db, tenant.ID, factory.CustomerVerified())
	factory.Customer(t, db, tenant.ID, factory.CustomerReferredBy(customer.ID))
	factory.LogChannel(t, db, tenant.ID)
	factory.UpstreamStore(t, db, tenant.ID, "https://store.example.com", "store-key")
	_, license := factory.Subscription(t, db, tenant.ID, policy.ID, customer.ID)
	_, licensePlus := factory.Subscription(t, db, tenant.ID, plus.ID, customer.ID)
	factory.License(t, db, tenant.ID, plus.ID, customer.ID)
	factory.APIKey(t, db, tenant.ID) // a key the walk may revoke; b.key it never names
	w.fixtures.values = map[string]string{
		"admin_key": b.key, "tenant": tenant.Slug, "policy": policy.Slug, "key": license.Key,
		"license_key": license.Key, "customer_email": customer.Email,
		"policy_plus": plus.Slug, "key_plus": licensePlus.Key, "fingerprint": "walker",
	}
	w.fixtures.alternatives = map[string][]string{
		"policy": {"policy", "policy_plus"}, "key": {"key", "key_plus"}, "fingerprint": {"fingerprint", ""},
	}
	purchase := b.send(t, w.srv, http.MethodPost, "/v1/purchase",
		fmt.Sprintf(`{"tenant":%q,"policy":%q,"customer_email":%q}`, tenant.Slug, policy.Slug, customer.Email), "Authorization", "")
	require.Equal(t, http.StatusCreated, purchase.status, "%s", purchase.body)
	machine := b.send(t, w.srv, http.MethodPost, "/v1/machines/activate",
		fmt.Sprintf(`{"key":%q,"fingerprint":"walker"}`, license.Key), "Authorization", "")
	require.Less(t, machine.status, 300, "%s", machine.body)
	w.discover()
}

// operations lists the document's operations in a stable order.
func operations(doc map[string]any) []walkOperation {
	var ops []walkOperation
	paths, _ := doc["paths"].(map[string]any)
	for path, item := range paths {
		for method, raw := range item.(map[string]any) {
			op, ok := raw.(map[string]any)
			if !ok {
				continue
			}
			wo := walkOperation{id: op["operationId"].(string), method: strings.ToUpper(method), path: path}
			for _, p := range asSlice(op["parameters"]) {
				wo.params = append(wo.params, p.(map[string]any))
			}
			if body, ok := op["requestBody"].(map[string]any); ok {
				content, _ := body["content"].(map[string]any)
				types := make([]string, 0, len(content))
				for ct := range content {
					types = append(types, ct)
				}
				slices.Sort(types)
				wo.mediaType = types[0]
				wo.body, _ = content[types[0]].(map[string]any)["schema"].(map[string]any)
			}
			for _, requirement := range asSlice(op["security"]) {
				if _, ok := requirement.(map[string]any)["adminKey"]; ok {
					wo.adminKey = "required"
				} else if len(requirement.(map[string]any)) == 0 && len(asSlice(op["security"])) > 1 {
					wo.adminKey = "optional"
				}
			}
			if wo.adminKey == "required" && len(asSlice(op["security"])) > 1 {
				wo.adminKey = "optional"
			}
			ops = append(ops, wo)
		}
	}
	slices.SortFunc(ops, func(a, b walkOperation) int { return strings.Compare(a.path+" "+a.method, b.path+" "+b.method) })
	return ops
}

// discover finds an existing id in every collection a list operation serves: GET each
// operation whose answer is a page of items, with the admin key, and keep the first id.
func (w *walker) discover() {
	for range 2 { // twice: nested collections need their parent's id
		for _, op := range w.ops {
			segments := strings.Split(op.path, "/")
			last := segments[len(segments)-1]
			if op.method != http.MethodGet || strings.HasPrefix(last, "{") || !hasQuery(op, "limit") {
				continue
			}
			path, ok := w.concretePath(op)
			if !ok {
				continue
			}
			res := w.b.send(w.t, w.srv, http.MethodGet, path+"?limit=200", "")
			var page struct {
				Items []map[string]any `json:"items"`
			}
			if res.status != http.StatusOK || json.Unmarshal(res.body, &page) != nil {
				continue
			}
			for _, item := range page.Items {
				if id, _ := item["id"].(string); id != "" && !w.fixtures.skip[id] && live(item) {
					w.fixtures.ids[last] = id
					break
				}
			}
		}
	}
}

// live reports whether a listed item is still usable: not archived, revoked or deleted, and
// active when it has a status.
func live(item map[string]any) bool {
	for _, field := range []string{"archived_at", "revoked_at", "deleted_at", "cancelled_at"} {
		if item[field] != nil {
			return false
		}
	}
	status, ok := item["status"].(string)
	return !ok || status == "active"
}

func hasQuery(op walkOperation, name string) bool {
	return slices.ContainsFunc(op.params, func(p map[string]any) bool { return p["in"] == "query" && p["name"] == name })
}

// concretePath fills the path's parameters with the fixtures' values; false when one has
// none yet.
func (w *walker) concretePath(op walkOperation) (string, bool) {
	templ := w.pathTemplate(op, -1, "")
	filled := w.fill(templ)
	return filled, !strings.Contains(filled, "{")
}

// pathTemplate fills the path's parameters with placeholders for existing ids, except the
// one at index hostile (of the path's segments), which gets value.
func (w *walker) pathTemplate(op walkOperation, hostile int, value string) string {
	segments := strings.Split(op.path, "/")
	for i, s := range segments {
		if !strings.HasPrefix(s, "{") {
			continue
		}
		switch {
		case i == hostile:
			segments[i] = value
		case w.fixtures.ids[segments[i-1]] != "":
			segments[i] = "{{id:" + segments[i-1] + "}}"
		default:
			segments[i] = uuid.NewString()
		}
	}
	return strings.Join(segments, "/")
}

// fill replaces placeholders with the fixtures' values.
func (w *walker) fill(s string) string {
	return placeholder.ReplaceAllStringFunc(s, func(m string) string {
		name := m[2 : len(m)-2]
		if id, ok := strings.CutPrefix(name, "id:"); ok {
			if v, ok := w.fixtures.ids[id]; ok {
				return v
			}
			return m
		}
		if v, ok := w.fixtures.values[name]; ok {
			return v
		}
		return m
	})
}

var (
	placeholder        = regexp.MustCompile(`\{\{[a-z_:-]+\}\}`)
	escapedPlaceholder = regexp.MustCompile(`%7B%7B[a-z_-]+(%3A[a-z_-]+)?%7D%7D`)
)

// walk sends count requests: every operation in turn (in an order shuffled each round),
// a quarter of them valid, the rest hostile.
func (w *walker) walk(count int) {
	order := slices.Clone(w.ops)
	for i := 0; i < count && len(w.findings) < hostileMaxFindings; i++ {
		if i%len(order) == 0 {
			w.rng.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		}
		if i > 0 && i%500 == 0 {
			w.seed(i / 500)
		}
		w.do(w.build(order[i%len(order)], w.rng.IntN(4) != 0))
	}
}

// replayCorpus sends every request stored in testdata/hostile.
func (w *walker) replayCorpus() {
	files, err := filepath.Glob(filepath.Join("testdata", "hostile", "*.json"))
	require.NoError(w.t, err)
	for _, file := range files {
		b, err := os.ReadFile(file)
		require.NoError(w.t, err)
		var reqs []hostileRequest
		require.NoError(w.t, json.Unmarshal(b, &reqs), file)
		for _, r := range reqs {
			w.do(r)
		}
	}
}

// build makes a request for op: valid, or with one hostile change.
func (w *walker) build(op walkOperation, hostile bool) hostileRequest {
	r := hostileRequest{Operation: op.id, Variant: "valid", Method: op.method, Header: map[string]string{}}
	switch op.adminKey {
	case "required":
		r.Header["Authorization"] = "Bearer {{admin_key}}"
	case "optional":
		if w.rng.IntN(2) == 0 {
			r.Header["Authorization"] = "Bearer {{admin_key}}"
		}
	}
	pathIndex, pathValue, querySuffix := -1, "", ""
	query := url.Values{}
	for _, p := range op.params {
		if p["in"] != "query" {
			continue
		}
		if p["required"] == true || w.rng.IntN(3) == 0 {
			query.Set(p["name"].(string), queryValue(w.gen.valid(p["schema"].(map[string]any), p["name"].(string))))
		}
	}
	var body any
	if op.mediaType != "" {
		if sample, ok := w.rawBodies[op.mediaType]; ok {
			body = sample()
		} else {
			body = w.gen.valid(op.body, "")
		}
		r.Header["Content-Type"] = op.mediaType
	}
	for _, p := range op.params {
		if p["in"] == "header" && p["name"] == btcpay.SignatureHeader {
			r.Header[btcpay.SignatureHeader] = "{{signature}}"
		}
	}

	if hostile {
		classes := []string{"header", "auth"}
		if op.mediaType != "" {
			classes = append(classes, "field", "field", "field", "field", "body", "content-type")
		}
		if strings.Contains(op.path, "{") {
			classes = append(classes, "path", "path")
		}
		if slices.ContainsFunc(op.params, func(p map[string]any) bool { return p["in"] == "query" }) {
			classes = append(classes, "query", "query")
		}
		switch class := classes[w.rng.IntN(len(classes))]; class {
		case "field":
			root := body
			sites := w.gen.sites(body, op.body, "", func(x any) { root = x }, nil)
			s := sites[w.rng.IntN(len(sites))]
			switch n := w.rng.IntN(10); {
			case n == 0 && s.del != nil:
				s.del()
				r.Variant = fmt.Sprintf("field %q missing", s.name)
			case n == 1:
				if m, ok := s.value.(map[string]any); ok {
					m["walker_extra"] = "x"
					r.Variant = fmt.Sprintf("extra field in %q", s.name)
					break
				}
				fallthrough
			default:
				h := hostileValues[w.rng.IntN(len(hostileValues))]
				s.set(h.value(s.value))
				r.Variant = fmt.Sprintf("field %q: %s", s.name, h.note)
			}
			body = root
		case "body":
			h := hostileBodies[w.rng.IntN(len(hostileBodies))]
			body = raw(h.body)
			r.Variant = h.note
		case "content-type":
			ct := hostileContentTypes[w.rng.IntN(len(hostileContentTypes))]
			r.Header["Content-Type"] = ct
			r.Variant = fmt.Sprintf("content type %q", ct)
		case "path":
			var params []int
			for i, s := range strings.Split(op.path, "/") {
				if strings.HasPrefix(s, "{") {
					params = append(params, i)
				}
			}
			h := hostileParams[w.rng.IntN(len(hostileParams))]
			pathIndex, pathValue = params[w.rng.IntN(len(params))], h.value
			r.Variant = fmt.Sprintf("path parameter %s: %s", strings.Split(op.path, "/")[pathIndex], h.note)
		case "query":
			var names []string
			for _, p := range op.params {
				if p["in"] == "query" {
					names = append(names, p["name"].(string))
				}
			}
			name := names[w.rng.IntN(len(names))]
			h := hostileParams[w.rng.IntN(len(hostileParams))]
			query.Del(name)
			r.Variant = fmt.Sprintf("query parameter %s: %s", name, h.note)
			if w.rng.IntN(4) == 0 {
				r.Variant += ", repeated"
				query.Add(name, "1")
			}
			querySuffix = name + "=" + h.value
		case "header":
			h := hostileHeaders[w.rng.IntN(len(hostileHeaders))]
			r.Header[h.name] = h.value
			r.Variant = fmt.Sprintf("header %s: %s", h.name, h.note)
		case "auth":
			if r.Header["Authorization"] != "" {
				delete(r.Header, "Authorization")
				r.Variant = "without the admin key"
			} else {
				r.Header["Authorization"] = "Bearer {{admin_key}}"
				r.Variant = "with the admin key"
			}
		}
	}
	r.Path = w.pathTemplate(op, pathIndex, pathValue)
	if len(query) > 0 {
		r.Path += "?" + escapedPlaceholder.ReplaceAllStringFunc(query.Encode(), func(m string) string {
			unescaped, _ := url.QueryUnescape(m)
			return unescaped
		})
	}
	if querySuffix != "" {
		r.Path += sep(r.Path) + querySuffix
	}
	if body != nil {
		r.setBody(encodeJSON(body))
	}
	return r
}

func sep(path string) string {
	if strings.Contains(path, "?") {
		return "&"
	}
	return "?"
}

// queryValue writes a generated value as a query parameter (arrays comma-separated).
func queryValue(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []any:
		parts := make([]string, len(v))
		for i, item := range v {
			parts[i] = queryValue(item)
		}
		return strings.Join(parts, ",")
	}
	return strings.Trim(string(encodeJSON(v)), `"`)
}

// do sends r and checks its answer.
func (w *walker) do(r hostileRequest) {
	t := w.t
	body := []byte(w.fill(string(r.body(t))))
	req, err := http.NewRequest(r.Method, w.srv.URL+w.fill(r.Path), bytes.NewReader(body))
	require.NoError(t, err, "walker built an unsendable request: %+v", r)
	for name, value := range r.Header {
		if value == "{{signature}}" {
			value = btcpay.Sign(w.secret, body)
		}
		req.Header.Set(name, w.fill(value))
	}
	start := clock.System{}.Now()
	res, err := w.srv.Client().Do(req)
	w.sent++
	if err != nil {
		w.finding(r, "no answer: "+err.Error())
		return
	}
	got, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	require.NoError(t, res.Body.Close())
	elapsed := time.Since(start)
	if err != nil {
		w.finding(r, "reading the answer: "+err.Error())
		return
	}
	status := res.StatusCode
	if w.verbose && r.Variant == "valid" && status >= 400 {
		t.Logf("valid request refused: %s %s %.300s -> %d %.300s", r.Operation, w.fill(r.Path), body, status, got)
	}
	switch {
	case status >= 500:
		w.finding(r, fmt.Sprintf("answered %d: %.300s", status, got))
	case elapsed > hostileMaxDuration:
		w.finding(r, fmt.Sprintf("took %s (bound %s)", elapsed.Round(time.Millisecond), hostileMaxDuration))
	case len(got) > hostileMaxError+4*(len(body)+len(r.Path)):
		w.finding(r, fmt.Sprintf("answered %d bytes to a %d-byte request", len(got), len(body)+len(r.Path)))
	case status >= 400:
		w.checkProblem(r, res, got)
	case status >= 200 && status < 300:
		w.succeeded[r.Operation]++
		res.Body = io.NopCloser(bytes.NewReader(got))
		if ok, errs := w.validator.ValidateHttpResponse(req, res); !ok {
			var reasons []string
			for _, e := range errs {
				reason := e.Message + ": " + e.Reason
				for _, s := range e.SchemaValidationErrors {
					reason += "; " + s.FieldPath + ": " + s.Reason
				}
				reasons = append(reasons, reason)
			}
			w.finding(r, fmt.Sprintf("%d answer breaks the documented schema: %s; body: %.500s", status, strings.Join(reasons, " | "), got))
		}
	}
}

// checkProblem checks that an error answer is an RFC 9457 problem of its status.
func (w *walker) checkProblem(r hostileRequest, res *http.Response, got []byte) {
	if ct := res.Header.Get("Content-Type"); ct != "application/problem+json" {
		w.finding(r, fmt.Sprintf("%d answer with Content-Type %q: %.300s", res.StatusCode, ct, got))
		return
	}
	if len(got) > hostileMaxError {
		w.finding(r, fmt.Sprintf("%d-byte error", len(got)))
		return
	}
	var p struct {
		Status *int    `json:"status"`
		Title  *string `json:"title"`
		Detail *string `json:"detail"`
	}
	if err := json.Unmarshal(got, &p); err != nil || p.Status == nil || p.Title == nil || p.Detail == nil ||
		*p.Status != res.StatusCode || *p.Title == "" || *p.Detail == "" {
		w.finding(r, fmt.Sprintf("%d answer is not a problem of its status (status, title, detail): %.300s", res.StatusCode, got))
		return
	}
	if databaseText.MatchString(*p.Detail) {
		w.finding(r, fmt.Sprintf("%d answer shows the database's error: %.300s", res.StatusCode, *p.Detail))
	}
}

// databaseText matches Postgres errors that must never reach a client: a value the database
// could not hold is a bound the API failed to check.
var databaseText = regexp.MustCompile(`(?i)out of range|SQLSTATE|invalid input syntax|invalid byte sequence`)

// finding reports a failed check once per operation, variant and kind, with the corpus
// entry that replays it.
func (w *walker) finding(r hostileRequest, what string) {
	kind := r.Operation + " " + r.Variant + " " + strings.SplitN(what, ":", 2)[0]
	if w.findings[kind] {
		return
	}
	w.findings[kind] = true
	r.Found = what
	if len(r.Body) > 2000 || len(r.BodyBase64) > 2000 {
		r.Found += fmt.Sprintf(" (body of %d bytes not shown)", len(r.body(w.t)))
		r.Body, r.BodyBase64 = "", ""
	}
	entry, err := json.MarshalIndent([]hostileRequest{r}, "", "  ")
	require.NoError(w.t, err)
	w.t.Errorf("%s %s (%s): %s\ncorpus entry (testdata/hostile/):\n%s", r.Method, r.Operation, r.Variant, what, entry)
}
