package api

import (
	"context"
	"errors"
	"log/slog"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/sql"
)

type contextKey int

const (
	requestInfoKey contextKey = iota
	principalKey
	txKey
	outcomesKey
	tenantKey
	readKey
)

// requestInfo is what the HTTP layer knows about a request: its id, the client's address,
// its logger, and the operation Huma matched, filled in as the request goes down. A request
// is handled on one goroutine, which alone uses its requestInfo.
type requestInfo struct {
	id        string
	client    string
	base      *slog.Logger // the server's logger
	log       *slog.Logger // base with the request id, made by logger when first needed
	operation string
}

// logger is the request's logger: the server's, with the request id. It is made on first
// use, as most requests log nothing (below the log level) and making it allocates.
func (i *requestInfo) logger() *slog.Logger {
	if i.log == nil {
		i.log = i.base.With("request_id", i.id)
	}
	return i.log
}

func requestInfoFrom(ctx context.Context) *requestInfo {
	if info, ok := ctx.Value(requestInfoKey).(*requestInfo); ok {
		return info
	}
	return &requestInfo{base: slog.New(slog.DiscardHandler)}
}

// principal is the authenticated caller of an admin operation.
type principal struct {
	tenantID uuid.UUID
	keyID    uuid.UUID
}

func principalFrom(ctx context.Context) (principal, bool) {
	p, ok := ctx.Value(principalKey).(principal)
	return p, ok
}

// tenantID returns the tenant of the authenticated caller. Only admin operations call it;
// the authentication middleware guarantees a principal for them.
func tenantID(ctx context.Context) uuid.UUID {
	p, _ := principalFrom(ctx)
	return p.tenantID
}

// actor returns the audit-log actor for the request.
func actor(ctx context.Context) core.Actor {
	p, _ := principalFrom(ctx)
	return core.Actor{Type: core.ActorAPIKey, ID: p.keyID.String(), RequestID: requestInfoFrom(ctx).id}
}

// step returns what a core step needs for this request, acting as actor, at the request's
// time (s.now: a sandbox tenant's clock, else the server's); its outcomes are
// the request transaction's, which transact counts once the transaction has committed.
func (s *Server) step(ctx context.Context, actor core.Actor) core.Step {
	return core.Step{Now: s.now(ctx), Actor: actor, Box: s.cfg.Box, Jobs: s.cfg.Jobs, Outcomes: outcomes(ctx)}
}

// licenseByKey authenticates a buyer operation by the licence key in its body: a malformed,
// forged or unknown key — anything but the key issued for a licence — is the same 401.
func (s *Server) licenseByKey(ctx context.Context, key string) (sql.License, error) {
	l, err := core.LicenseByKey(ctx, s.conn(ctx), key)
	if errors.Is(err, core.ErrNotFound) {
		return sql.License{}, newProblem(CodeLicenseKeyInvalid, "invalid licence key")
	}
	return l, err
}

// buyer is the audit-log actor of a buyer operation: the licence whose key was presented.
func buyer(ctx context.Context, licenseID uuid.UUID) core.Actor {
	return core.Actor{Type: core.ActorBuyer, ID: licenseID.String(), RequestID: requestInfoFrom(ctx).id}
}

// tx returns the request's transaction. Only write operations call it: the transact
// middleware opens one for every POST, PUT, PATCH and DELETE.
func tx(ctx context.Context) pgx.Tx {
	t, _ := ctx.Value(txKey).(pgx.Tx)
	return t
}

// outcomes returns the domain outcomes of the request's transaction; nil (not counted)
// outside one.
func outcomes(ctx context.Context) *core.Outcomes {
	o, _ := ctx.Value(outcomesKey).(*core.Outcomes)
	return o
}

// conn returns what a handler runs its queries on: the request's transaction for writes
// (opened by the transact middleware), the database read chooses inside read, the server's
// pool for other reads.
func (s *Server) conn(ctx context.Context) sql.DBTX {
	if tx, ok := ctx.Value(txKey).(pgx.Tx); ok {
		return tx
	}
	if db, ok := ctx.Value(readKey).(sql.DBTX); ok {
		return db
	}
	return s.cfg.DB
}

// read runs fn, the queries of an operation that may read a replica, with s.conn returning
// the database Config.Reads chooses: the replica while it is within its staleness bound,
// else the primary. fn says whether its answer is final (Reader); one that is not is read
// again on the primary. Without Config.Reads, or inside a transaction, fn runs on s.conn.
func (s *Server) read(ctx context.Context, fn func(ctx context.Context) (final bool, err error)) error {
	if s.cfg.Reads == nil || tx(ctx) != nil {
		_, err := fn(ctx)
		return err
	}
	return s.cfg.Reads.Read(ctx, func(db sql.DBTX) (bool, error) {
		return fn(context.WithValue(ctx, readKey, db))
	})
}
