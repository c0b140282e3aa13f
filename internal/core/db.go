package core

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/sql"
)

// DB returns db with every error of its queries translated (translate), as are those of the
// transactions begun on it: the data boundary. The API, the jobs and the CLI wrap the
// database they are given once, so that handlers, workers and steps see Tessera's errors
// (ErrNotFound, ErrDuplicate, ErrInvalid, ...) and never interpret a driver's. The
// driver's errors stay reachable through errors.Is and errors.As. Wrapping twice is
// wrapping once; no database (nil) stays nil.
func DB(db pg.DB) pg.DB {
	if db == nil {
		return nil
	}
	if translated, ok := db.(translatingDB); ok {
		return translated
	}
	if tx, ok := db.(pgx.Tx); ok {
		return Tx(tx)
	}
	return translatingDB{db}
}

// Tx returns tx with every error of its queries and of its commit (a deferred constraint is
// checked then) translated (translate), as DB does for a database; savepoints begun on it are
// translated too.
func Tx(tx pgx.Tx) pgx.Tx {
	if translated, ok := tx.(translatingTx); ok {
		return translated
	}
	return translatingTx{tx}
}

type translatingDB struct{ db pg.DB }

func (d translatingDB) Exec(ctx context.Context, statement string, args ...any) (pgconn.CommandTag, error) {
	return exec(ctx, d.db, statement, args)
}

func (d translatingDB) Query(ctx context.Context, statement string, args ...any) (pgx.Rows, error) {
	return query(ctx, d.db, statement, args)
}

func (d translatingDB) QueryRow(ctx context.Context, statement string, args ...any) pgx.Row {
	return translatingRow{d.db.QueryRow(ctx, statement, args...)}
}

func (d translatingDB) Begin(ctx context.Context) (pgx.Tx, error) {
	return begin(ctx, d.db)
}

type translatingTx struct{ pgx.Tx }

func (t translatingTx) Exec(ctx context.Context, statement string, args ...any) (pgconn.CommandTag, error) {
	return exec(ctx, t.Tx, statement, args)
}

func (t translatingTx) Query(ctx context.Context, statement string, args ...any) (pgx.Rows, error) {
	return query(ctx, t.Tx, statement, args)
}

func (t translatingTx) QueryRow(ctx context.Context, statement string, args ...any) pgx.Row {
	return translatingRow{t.Tx.QueryRow(ctx, statement, args...)}
}

func (t translatingTx) Begin(ctx context.Context) (pgx.Tx, error) {
	return begin(ctx, t.Tx)
}

func (t translatingTx) Commit(ctx context.Context) error {
	return translate(t.Tx.Commit(ctx))
}

func exec(ctx context.Context, db sql.DBTX, statement string, args []any) (pgconn.CommandTag, error) {
	tag, err := db.Exec(ctx, statement, args...)
	return tag, translate(err)
}

func query(ctx context.Context, db sql.DBTX, statement string, args []any) (pgx.Rows, error) {
	rows, err := db.Query(ctx, statement, args...)
	if err != nil {
		return rows, translate(err)
	}
	return translatingRows{rows}, nil
}

func begin(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}) (pgx.Tx, error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return nil, translate(err)
	}
	return translatingTx{tx}, nil
}

type translatingRow struct{ row pgx.Row }

func (r translatingRow) Scan(dest ...any) error { return translate(r.row.Scan(dest...)) }

type translatingRows struct{ pgx.Rows }

func (r translatingRows) Scan(dest ...any) error { return translate(r.Rows.Scan(dest...)) }
func (r translatingRows) Err() error             { return translate(r.Rows.Err()) }
