package api

import (
	"context"
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
)

// requestInfo is what the HTTP layer knows about a request: its id, its logger, and the
// operation Huma matched (empty for unmatched routes), filled in as the request goes down.
type requestInfo struct {
	id        string
	log       *slog.Logger
	operation string
}

func requestInfoFrom(ctx context.Context) *requestInfo {
	if info, ok := ctx.Value(requestInfoKey).(*requestInfo); ok {
		return info
	}
	return &requestInfo{log: slog.New(slog.DiscardHandler)}
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

// conn returns what a handler runs its queries on: the request's transaction for writes
// (opened by the transact middleware), the server's pool for reads.
func (s *Server) conn(ctx context.Context) sql.DBTX {
	if tx, ok := ctx.Value(txKey).(pgx.Tx); ok {
		return tx
	}
	return s.cfg.DB
}
