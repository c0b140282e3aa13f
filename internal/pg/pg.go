// Package pg holds what every package needs to talk to Postgres: the DB interface that a
// pool and a test transaction both satisfy, and the one transaction helper.
package pg

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/sql"
)

// DB runs queries and begins transactions. In production it is a *pgxpool.Pool; in tests it
// is the test's pgx.Tx, whose Begin opens a savepoint, so code under test runs inside the
// test's rolled-back transaction.
type DB interface {
	sql.DBTX
	Begin(ctx context.Context) (pgx.Tx, error)
}

// InTx runs fn in a transaction begun on db. It commits when fn returns nil and rolls back
// when fn returns an error or panics; the rollback runs even when ctx is already cancelled.
func InTx(ctx context.Context, db DB, fn func(tx pgx.Tx) error) (err error) {
	tx, err := db.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = Rollback(ctx, tx) // the panic is what matters; it goes on up
			panic(p)
		}
		if err != nil {
			err = errors.Join(err, Rollback(ctx, tx))
		}
	}()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// Rollback rolls tx back under a context that is not cancelled with ctx. A transaction that
// is already closed is not an error.
func Rollback(ctx context.Context, tx pgx.Tx) error {
	err := tx.Rollback(context.WithoutCancel(ctx))
	if err != nil && !errors.Is(err, pgx.ErrTxClosed) {
		return fmt.Errorf("roll back transaction: %w", err)
	}
	return nil
}
