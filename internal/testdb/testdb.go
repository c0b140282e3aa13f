// Package testdb gives tests a real, migrated Postgres database: DATABASE_URL's server
// (make test points it at the embedded database). A template database is migrated once per
// schema version, whichever test process gets there first; then
//   - Tx gives a test a transaction in a shared migrated database, rolled back at cleanup;
//   - Clone gives a test that commits, or runs goroutines on several connections, its own
//     database cloned from the template, dropped at cleanup.
package testdb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/migrate"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/migrations"
)

// setupLockID serialises template creation across test processes.
const setupLockID = 0x7e55e7a + 1

// state is per test process: the template's name and the shared pool. A package-level
// once is the only way to do work once per `go test` process.
var state struct {
	once     sync.Once
	err      error
	baseURL  string
	template string
	shared   *pgxpool.Pool
}

func setup(tb testing.TB) {
	tb.Helper()
	state.once.Do(func() { state.err = initialise() })
	if state.err != nil {
		tb.Fatalf("testdb: %v", state.err)
	}
}

func initialise() (err error) {
	ctx := context.Background()
	state.baseURL = os.Getenv("DATABASE_URL")
	if state.baseURL == "" {
		return fmt.Errorf("DATABASE_URL is not set: run the tests with make test, which starts the embedded database")
	}
	version, err := schemaVersion()
	if err != nil {
		return err
	}
	state.template = "tessera_template_" + version
	shared := "tessera_shared_" + version

	admin, err := pgx.Connect(ctx, state.baseURL)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", redact(state.baseURL), err)
	}
	defer func() { err = errors.Join(err, admin.Close(ctx)) }()
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock($1)", setupLockID); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	defer admin.Exec(ctx, "SELECT pg_advisory_unlock($1)", setupLockID) //nolint:errcheck // the session ends anyway

	if !exists(ctx, admin, state.template) {
		if err := buildTemplate(ctx, admin); err != nil {
			return err
		}
	}
	if !exists(ctx, admin, shared) {
		if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", shared, state.template)); err != nil {
			return fmt.Errorf("create shared database: %w", err)
		}
	}
	cfg, err := pg.PoolConfig(withDatabase(state.baseURL, shared))
	if err != nil {
		return err
	}
	cfg.MaxConns = 16
	state.shared, err = pgxpool.NewWithConfig(ctx, cfg)
	return err
}

// buildTemplate migrates a new database under a temporary name and renames it, so a
// half-built template is never used.
func buildTemplate(ctx context.Context, admin *pgx.Conn) error {
	building := state.template + "_building"
	if _, err := admin.Exec(ctx, "DROP DATABASE IF EXISTS "+building+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop stale template: %w", err)
	}
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+building); err != nil {
		return fmt.Errorf("create template: %w", err)
	}
	pool, err := pg.NewPool(ctx, withDatabase(state.baseURL, building))
	if err != nil {
		return err
	}
	err = migrate.Up(ctx, pool, slog.New(slog.DiscardHandler))
	pool.Close()
	if err != nil {
		return fmt.Errorf("migrate template: %w", err)
	}
	_, err = admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", building, state.template))
	if err == nil {
		_, err = admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s WITH IS_TEMPLATE true ALLOW_CONNECTIONS false", state.template))
	}
	return err
}

// schemaVersion hashes Tessera's migrations and River's version: a new migration makes a
// new template.
func schemaVersion() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, path)
		fmt.Fprintf(h, "%s\n%s\n", path, b)
		return err
	})
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if strings.HasPrefix(dep.Path, "github.com/riverqueue/river") {
				fmt.Fprintf(h, "%s@%s\n", dep.Path, dep.Version)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:12], err
}

func exists(ctx context.Context, conn *pgx.Conn, database string) bool {
	var found bool
	err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", database).Scan(&found)
	return err == nil && found
}

// Tx returns a transaction in the shared migrated database, rolled back when the test
// ends, its errors translated at the data boundary as in production (core.Tx). Code under
// test that begins transactions on it gets savepoints.
func Tx(tb testing.TB) pgx.Tx {
	tb.Helper()
	setup(tb)
	tx, err := state.shared.Begin(context.Background())
	if err != nil {
		tb.Fatalf("testdb: begin: %v", err)
	}
	tb.Cleanup(func() {
		if err := tx.Rollback(context.Background()); err != nil {
			tb.Errorf("testdb: roll back: %v", err)
		}
	})
	return core.Tx(tx)
}

// Clone returns a pool on a new database cloned from the migrated template, and the
// database's URL; the database is dropped when the test ends.
func Clone(tb testing.TB) (*pgxpool.Pool, string) {
	tb.Helper()
	setup(tb)
	dbURL := create(tb, "TEMPLATE "+state.template)
	pool, err := pg.NewPool(context.Background(), dbURL)
	if err != nil {
		tb.Fatalf("testdb: connect to clone: %v", err)
	}
	tb.Cleanup(pool.Close) // cleanups run last-in first-out: before the drop
	return pool, dbURL
}

// Outage makes the database at dbURL (a Clone) unreachable, as during a restart: it refuses
// new connections and its open ones are terminated. The returned function ends the outage.
func Outage(tb testing.TB, dbURL string) (end func()) {
	tb.Helper()
	setup(tb)
	u, err := url.Parse(dbURL)
	if err != nil {
		tb.Fatalf("testdb: %v", err)
	}
	database := strings.TrimPrefix(u.Path, "/")
	name := pgx.Identifier{database}.Sanitize()
	admin(tb, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS false")
	admin(tb, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '"+strings.ReplaceAll(database, "'", "''")+"'")
	return func() { admin(tb, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS true") }
}

// Empty returns the URL of a new, empty database (no migrations), dropped when the test
// ends; migration tests start from it.
func Empty(tb testing.TB) string {
	tb.Helper()
	setup(tb)
	return create(tb, "")
}

// create creates a database with the given CREATE DATABASE options and drops it (forcing
// out connections) when the test ends.
func create(tb testing.TB, options string) string {
	tb.Helper()
	name := "tessera_test_" + strings.ReplaceAll(uuid.NewString(), "-", "")[:16]
	admin(tb, "CREATE DATABASE "+name+" "+options)
	tb.Cleanup(func() { admin(tb, "DROP DATABASE "+name+" WITH (FORCE)") })
	return withDatabase(state.baseURL, name)
}

// admin runs one statement on DATABASE_URL's database.
func admin(tb testing.TB, statement string) {
	tb.Helper()
	adminAt(tb, state.baseURL, statement)
}

// adminAt runs one statement on the database at url.
func adminAt(tb testing.TB, url, statement string) {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatalf("testdb: connect: %v", err)
	}
	defer func() {
		if err := conn.Close(ctx); err != nil {
			tb.Fatalf("testdb: close: %v", err)
		}
	}()
	if _, err := conn.Exec(ctx, statement); err != nil {
		tb.Fatalf("testdb: %s: %v", statement, err)
	}
}

// withDatabase returns base with its database name replaced.
func withDatabase(base, database string) string {
	u, err := url.Parse(base)
	if err != nil { //lint:swallow a URL that does not parse fails to connect, with pgx's own message
		return base
	}
	u.Path = "/" + database
	return u.String()
}

func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil { //lint:swallow the parser's error would print the URL, password included
		return "DATABASE_URL"
	}
	return u.Redacted()
}
