// Package migrate brings a database to Tessera's schema: River's tables through
// rivermigrate, then Tessera's own goose migrations. It is safe to run from several
// processes at once.
package migrate

import (
	"context"
	stdsql "database/sql"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/tessera/tessera/migrations"
)

// lockID is the session advisory lock that serialises concurrent migrators.
const lockID = 0x7e55e7a // "tessera"

// Up applies every pending River and Tessera migration. Concurrent callers wait on one
// advisory lock; the second finds nothing left to do.
func Up(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) (err error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("migrate: acquire connection: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockID); err != nil {
		return fmt.Errorf("migrate: take lock: %w", err)
	}
	defer func() {
		//lint:swallow closing the session drops the lock as surely as the unlock would have
		if _, err := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockID); err != nil {
			_ = conn.Conn().Close(context.WithoutCancel(ctx)) // a failed close leaves the session to die with its connection
		}
	}()

	// River's migrations run each in its own transaction (one adds an enum value that a
	// later statement uses, which Postgres refuses inside one transaction).
	migrator, err := riverMigrator(pool)
	if err != nil {
		return err
	}
	res, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("migrate river: %w", err)
	}
	for _, v := range res.Versions {
		log.InfoContext(ctx, "applied river migration", "version", v.Version, "name", v.Name)
	}

	provider, db, err := gooseProvider(pool)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	results, err := provider.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate tessera: %w", err)
	}
	for _, r := range results {
		log.InfoContext(ctx, "applied migration", "version", r.Source.Version, "file", r.Source.Path, "duration", r.Duration)
	}
	return nil
}

// Pending reports whether any River or Tessera migration has not been applied yet; a
// database with pending migrations is not ready to serve.
func Pending(ctx context.Context, pool *pgxpool.Pool) (_ bool, err error) {
	migrator, err := riverMigrator(pool)
	if err != nil {
		return false, err
	}
	valid, err := migrator.Validate(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("validate river migrations: %w", err)
	}
	if !valid.OK {
		return true, nil
	}
	provider, db, err := gooseProvider(pool)
	if err != nil {
		return false, err
	}
	defer func() { err = errors.Join(err, db.Close()) }()
	pending, err := provider.HasPending(ctx)
	if err != nil {
		return false, fmt.Errorf("check tessera migrations: %w", err)
	}
	return pending, nil
}

func riverMigrator(pool *pgxpool.Pool) (*rivermigrate.Migrator[pgx.Tx], error) {
	migrator, err := rivermigrate.New(riverpgxv5.New(pool), &rivermigrate.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, fmt.Errorf("river migrator: %w", err)
	}
	return migrator, nil
}

func gooseProvider(pool *pgxpool.Pool) (*goose.Provider, *stdsql.DB, error) {
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return nil, nil, fmt.Errorf("goose locker: %w", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	provider, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS, goose.WithSessionLocker(locker))
	if err != nil {
		return nil, nil, fmt.Errorf("goose provider: %w", err)
	}
	return provider, db, nil
}
