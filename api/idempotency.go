package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/licensekey"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/sql"
)

// Idempotency headers.
const (
	headerIdempotencyKey = "Idempotency-Key"
	headerReplayed       = "Idempotent-Replayed"
)

// metadataReadOnly marks an operation that does not write although its method is POST
// (validation): it runs without a transaction or idempotency.
const metadataReadOnly = "readOnly"

// metadataOwnTransactions marks a write that opens its own transactions (the provider
// webhook, which asks the provider before it writes): transact leaves it alone, as a
// read-only operation.
const metadataOwnTransactions = "ownTransactions"

// transacted reports whether transact opens the transaction of op's requests: op is not
// read-only and does not open its own.
func transacted(op *huma.Operation) bool {
	readOnly, _ := op.Metadata[metadataReadOnly].(bool)
	own, _ := op.Metadata[metadataOwnTransactions].(bool)
	return !readOnly && !own
}

var (
	errInFlight        = errors.New("in flight")
	errRequestMismatch = errors.New("request mismatch")
	errHandlerRefused  = errors.New("handler answered with an error")
)

// replayError carries a stored response out of the transaction that found it.
type replayError struct{ stored sql.IdempotencyKey }

func (replayError) Error() string { return "replay" }

// transact makes every write (POST, PUT, PATCH, DELETE; not those that open their own,
// metadataOwnTransactions) one transaction: it opens it, hands
// it to the handler through the context, buffers the response, and commits only when the
// handler succeeded — so a client never sees a success that did not commit. A write that
// carries an Idempotency-Key is also idempotent, within its scope (idempotencyScopeOf): an
// admin request's keys are its tenant's, a buyer request's keys are the buyers' of the tenant
// it names. Within the scope:
//   - the same key and the same request (method, path, query and body bytes) replays the
//     first successful response, with Idempotent-Replayed: true;
//   - the same key with another request is 422;
//   - the same key while its first request is still running is 409;
//   - error responses are not stored: nothing was written, so the request may be retried.
//
// Stored responses are sealed with Config.Box (they may carry a secret shown once) and
// expire after Config.IdempotencyTTL (the idempotency.expire_sweep job
// deletes them).
func (s *Server) transact(ctx huma.Context, next func(huma.Context)) {
	if !transacted(ctx.Operation()) {
		next(ctx)
		return
	}
	switch ctx.Method() {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		next(ctx)
		return
	}
	c := ctx.Context()
	screened, ok := ctx.(*screenedContext)
	if !ok {
		s.writeError(ctx, problem(c, errors.New("transact must run after screenBody, which reads the body")))
		return
	}
	body := screened.body
	var err error
	key := ctx.Header(headerIdempotencyKey)
	if key != "" && !printableASCII(key, 255) {
		s.writeError(ctx, newProblem(CodeIdempotencyKeyInvalid, "Idempotency-Key must be 1 to 255 printable ASCII characters"))
		return
	}
	var scope idempotencyScope
	if key != "" {
		scope = s.idempotencyScopeOf(ctx)
	}
	idempotent := key != "" && scope.tenantID != uuid.Nil
	u := ctx.URL()
	hash := sha256.Sum256(fmt.Appendf(nil, "%s %s?%s\n%s", ctx.Method(), u.Path, u.RawQuery, body))
	now := s.now(c)
	rec := &recorder{humaContext: ctx, body: body, header: http.Header{}}
	done := &core.Outcomes{}

	err = pg.InTx(c, s.cfg.DB, func(tx pgx.Tx) error {
		if idempotent {
			if err := s.idempotencyCheck(c, tx, scope, key, hash[:]); err != nil {
				return err
			}
		}
		next(huma.WithValue(huma.WithValue(rec, txKey, tx), outcomesKey, done))
		if rec.status >= 400 {
			return errHandlerRefused
		}
		if !idempotent {
			return nil
		}
		headers, err := json.Marshal(rec.header)
		if err != nil {
			return fmt.Errorf("encode response headers: %w", err)
		}
		return s.queries.IdempotencyKeyStore(c, tx, sql.IdempotencyKeyStoreParams{
			TenantID: scope.tenantID, Scope: scope.name, Key: key, RequestHash: hash[:], ResponseStatus: int32(rec.status),
			ResponseHeaders: headers, ResponseBody: s.cfg.Box.Seal(rec.out.Bytes(), scope.label(key)),
			Now: now, ExpiresAt: now.Add(s.cfg.IdempotencyTTL),
		})
	})
	var replay replayError
	switch {
	case err == nil:
		s.cfg.Outcomes.Count(done) // committed
		rec.flush(ctx, false)
	case errors.Is(err, errHandlerRefused):
		rec.flush(ctx, false)
	case errors.Is(err, errInFlight):
		s.writeError(ctx, newProblem(CodeIdempotencyKeyInFlight, "a request with this Idempotency-Key is still in progress; retry later"))
	case errors.Is(err, errRequestMismatch):
		s.writeError(ctx, newProblem(CodeIdempotencyKeyReused, "this Idempotency-Key was used with a different request"))
	case errors.As(err, &replay):
		rec.header = http.Header{}
		rec.out.Reset()
		if err := json.Unmarshal(replay.stored.ResponseHeaders, &rec.header); err != nil {
			s.writeError(ctx, problem(c, fmt.Errorf("decode stored response headers: %w", err)))
			return
		}
		body, err := s.cfg.Box.Open(replay.stored.ResponseBody, scope.label(key))
		if err != nil {
			s.writeError(ctx, problem(c, fmt.Errorf("open stored response: %w", err)))
			return
		}
		rec.status = int(replay.stored.ResponseStatus)
		rec.out.Write(body)
		rec.flush(ctx, true)
	default:
		s.writeError(ctx, problem(c, err))
	}
}

// Idempotency scopes: a tenant's admin requests, or the requests of a tenant's buyers.
const (
	scopeAdmin = "admin"
	scopeBuyer = "buyer"
)

// idempotencyScope is where an Idempotency-Key is unique.
type idempotencyScope struct {
	tenantID uuid.UUID
	name     string // scopeAdmin or scopeBuyer
}

// label binds a stored response to its scope and key. Stored responses are sealed: some
// carry secrets shown once (a new API key, a webhook secret).
func (sc idempotencyScope) label(key string) string {
	return "idempotency/" + sc.tenantID.String() + "/" + sc.name + "/" + key
}

// metadataBuyerTenant holds, on a buyer operation, the buyerTenant that finds the tenant its
// request names, so that the request's Idempotency-Key is scoped by it.
const metadataBuyerTenant = "buyerTenant"

// buyerTenant finds the tenant a buyer request names, with its clock, from its path and raw
// body, before the handler runs (resolveBuyer). core.ErrNotFound means the request names no
// tenant that exists: it then runs on the server's clock, without idempotency, and its
// handler refuses it (refusals are not stored).
type buyerTenant func(ctx huma.Context, body []byte) (requestTenant, error)

// buyerOperation marks op as a buyer operation whose time (s.now) and Idempotency-Keys are
// those of the tenant that tenantOf finds in its request.
func buyerOperation(op huma.Operation, tenantOf buyerTenant) huma.Operation {
	op.Metadata = maps.Clone(op.Metadata) // the operation's own map is shared by every server
	if op.Metadata == nil {
		op.Metadata = map[string]any{}
	}
	op.Metadata[metadataBuyerTenant] = tenantOf
	return op
}

// idempotencyScopeOf returns the scope of a write's Idempotency-Key: the authenticated
// tenant's admin scope, or the buyer scope of the tenant a buyer operation names (found by
// resolveBuyer). The zero scope (no tenant) means the write is not idempotent.
func (s *Server) idempotencyScopeOf(ctx huma.Context) idempotencyScope {
	if p, ok := principalFrom(ctx.Context()); ok {
		return idempotencyScope{tenantID: p.tenantID, name: scopeAdmin}
	}
	if t, ok := ctx.Context().Value(tenantKey).(requestTenant); ok {
		return idempotencyScope{tenantID: t.id, name: scopeBuyer}
	}
	return idempotencyScope{}
}

// tenantOfLicenseKey is the buyerTenant of operations that carry a licence key as "key" in
// their body: the tenant the key's claims name, with its clock (the handler verifies the key).
func (s *Server) tenantOfLicenseKey(ctx huma.Context, body []byte) (requestTenant, error) {
	var in struct {
		Key string `json:"key"`
	}
	if json.Unmarshal(body, &in) != nil {
		return requestTenant{}, core.ErrNotFound
	}
	parsed, err := licensekey.Parse(in.Key)
	if err != nil { //lint:swallow a key that does not parse names no tenant, like an unknown one
		return requestTenant{}, core.ErrNotFound
	}
	t, err := s.queries.TenantGet(ctx.Context(), s.cfg.DB, parsed.TenantID)
	if err != nil {
		return requestTenant{}, err
	}
	return requestTenant{id: t.ID, clock: t.ClockAt}, nil
}

// tenantOfSlug is the buyerTenant of a purchase: the tenant whose slug is "tenant" in its
// body.
func (s *Server) tenantOfSlug(ctx huma.Context, body []byte) (requestTenant, error) {
	var in struct {
		Tenant string `json:"tenant"`
	}
	if json.Unmarshal(body, &in) != nil || in.Tenant == "" {
		return requestTenant{}, core.ErrNotFound
	}
	t, err := s.queries.TenantGetBySlug(ctx.Context(), s.cfg.DB, in.Tenant)
	if err != nil {
		return requestTenant{}, err
	}
	return requestTenant{id: t.ID, clock: t.ClockAt}, nil
}

// tenantOfPayIn is the buyerTenant of PayIn operations: the tenant of the PayIn whose id is
// the path's {id}.
func (s *Server) tenantOfPayIn(ctx huma.Context, _ []byte) (requestTenant, error) {
	id, err := uuid.Parse(ctx.Param("id"))
	if err != nil { //lint:swallow an id that does not parse names no PayIn, like an unknown one
		return requestTenant{}, core.ErrNotFound
	}
	t, err := s.queries.TenantGetByPayIn(ctx.Context(), s.cfg.DB, id)
	if err != nil {
		return requestTenant{}, err
	}
	return requestTenant{id: t.ID, clock: t.ClockAt}, nil
}

// idempotencyCheck takes the key's lock and looks for its stored response; it returns nil
// when the request should run.
func (s *Server) idempotencyCheck(c context.Context, tx pgx.Tx, scope idempotencyScope, key string, hash []byte) error {
	locked, err := s.queries.IdempotencyKeyLock(c, tx, sql.IdempotencyKeyLockParams{TenantID: scope.tenantID, Scope: scope.name, Key: key})
	if err != nil {
		return fmt.Errorf("lock idempotency key: %w", err)
	}
	if !locked {
		return errInFlight
	}
	stored, err := s.queries.IdempotencyKeyGet(c, tx, sql.IdempotencyKeyGetParams{TenantID: scope.tenantID, Scope: scope.name, Key: key, Now: s.now(c)})
	switch {
	case errors.Is(err, core.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("read idempotency key: %w", err)
	case !bytes.Equal(stored.RequestHash, hash):
		return errRequestMismatch
	}
	return replayError{stored: stored}
}

// humaContext lets recorder embed huma.Context without a field named Context hiding the
// interface's Context method.
type humaContext = huma.Context

// recorder buffers a handler's response so that it reaches the client only after the
// transaction has decided, and can be stored for replay.
type recorder struct {
	humaContext
	body   []byte
	status int
	header http.Header
	out    bytes.Buffer
}

func (r *recorder) BodyReader() io.Reader           { return bytes.NewReader(r.body) }
func (r *recorder) SetStatus(code int)              { r.status = code }
func (r *recorder) Status() int                     { return r.status }
func (r *recorder) SetHeader(name, value string)    { r.header.Set(name, value) }
func (r *recorder) AppendHeader(name, value string) { r.header.Add(name, value) }
func (r *recorder) BodyWriter() io.Writer           { return &r.out }

// flush writes the buffered response to the real context.
func (r *recorder) flush(ctx huma.Context, replayed bool) {
	for name, values := range r.header {
		for _, v := range values {
			ctx.AppendHeader(name, v)
		}
	}
	if replayed {
		ctx.SetHeader(headerReplayed, "true")
	}
	ctx.SetStatus(r.status)
	if _, err := ctx.BodyWriter().Write(r.out.Bytes()); err != nil {
		requestInfoFrom(ctx.Context()).logger().WarnContext(ctx.Context(), "write response", "error", err)
	}
}
