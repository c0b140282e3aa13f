// Package benchdb gives a benchmark its own database on DATABASE_URL's server, migrated, and
// drops it at the end.
package benchdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tessera/tessera/internal/migrate"
	"github.com/tessera/tessera/internal/pg"
)

// Database is a benchmark's database and a pool on it.
type Database struct {
	// Pool is a pool on the database.
	Pool  *pgxpool.Pool
	admin *pgx.Conn
	name  string
}

// Create creates database name on DATABASE_URL's server (dropping it first when it exists),
// migrates it with internal/migrate.Up and opens a pool on it, configured by configure.
func Create(ctx context.Context, name string, configure ...func(*pgxpool.Config)) (*Database, error) {
	base := os.Getenv("DATABASE_URL")
	if base == "" {
		return nil, errors.New("DATABASE_URL is not set")
	}
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		return nil, err
	}
	db := &Database{admin: admin, name: name}
	if err := db.create(ctx, base, configure); err != nil {
		return nil, errors.Join(err, db.Close(ctx, false))
	}
	return db, nil
}

func (d *Database) create(ctx context.Context, base string, configure []func(*pgxpool.Config)) error {
	if _, err := d.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+d.name+" WITH (FORCE)"); err != nil {
		return err
	}
	if _, err := d.admin.Exec(ctx, "CREATE DATABASE "+d.name); err != nil {
		return err
	}
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	u.Path = "/" + d.name
	config, err := pg.PoolConfig(u.String())
	if err != nil {
		return err
	}
	for _, c := range configure {
		c(config)
	}
	if d.Pool, err = pgxpool.NewWithConfig(ctx, config); err != nil {
		return err
	}
	if err := migrate.Up(ctx, d.Pool, slog.New(slog.DiscardHandler)); err != nil {
		return fmt.Errorf("migrate %s: %w", d.name, err)
	}
	return nil
}

// Close closes the pool and drops the database, unless keep.
func (d *Database) Close(ctx context.Context, keep bool) error {
	ctx = context.WithoutCancel(ctx)
	if d.Pool != nil {
		d.Pool.Close()
	}
	var err error
	if !keep {
		_, err = d.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+d.name+" WITH (FORCE)")
	}
	return errors.Join(err, d.admin.Close(ctx))
}
