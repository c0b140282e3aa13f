package benchdb

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tessera/tessera/internal/clock"
)

// QueryTimes is a pgx query tracer that adds up, by query, the time from sending each query
// to its result (the round trip, as the client sees it). A query is named by its sqlc name
// (its "-- name: X" line), else by its first line.
type QueryTimes struct {
	mu    sync.Mutex
	times map[string]*QueryTime
}

// QueryTime is the calls of one query and their total time.
type QueryTime struct {
	Query string
	Calls int
	Total time.Duration
}

// queryStart is the context key of a query's start.
type queryStart struct{}

// queryStarted is what a query's context carries from its start to its end.
type queryStarted struct {
	name string
	at   time.Time
}

// Trace makes a pool's queries trace to q: pass it to Create.
func (q *QueryTimes) Trace(config *pgxpool.Config) { config.ConnConfig.Tracer = q }

// TraceQueryStart notes when a query starts.
func (q *QueryTimes) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, queryStart{}, queryStarted{name: queryName(data.SQL), at: clock.System{}.Now()})
}

// TraceQueryEnd adds the query's time.
func (q *QueryTimes) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	started, ok := ctx.Value(queryStart{}).(queryStarted)
	if !ok {
		return
	}
	took := time.Since(started.at)
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.times == nil {
		q.times = map[string]*QueryTime{}
	}
	t := q.times[started.name]
	if t == nil {
		t = &QueryTime{Query: started.name}
		q.times[started.name] = t
	}
	t.Calls++
	t.Total += took
}

// Reset forgets the times so far.
func (q *QueryTimes) Reset() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.times = nil
}

// Top returns the n queries that took the most time, most first.
func (q *QueryTimes) Top(n int) []QueryTime {
	q.mu.Lock()
	defer q.mu.Unlock()
	var all []QueryTime
	for _, t := range q.times {
		all = append(all, *t)
	}
	slices.SortFunc(all, func(a, b QueryTime) int { return cmp.Compare(b.Total, a.Total) })
	return all[:min(n, len(all))]
}

// queryName is a query's sqlc name, or its first line.
func queryName(sql string) string {
	first, _, _ := strings.Cut(strings.TrimSpace(sql), "\n")
	if name, ok := strings.CutPrefix(first, "-- name: "); ok {
		name, _, _ = strings.Cut(name, " ")
		return name
	}
	return first
}
