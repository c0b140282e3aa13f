package core_test

import (
	"context"
	"net"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/testdb"
)

// TestDBUnavailable classifies real errors from a real server: what an outage produces is
// unavailable, what a working database answers is not.
func TestDBUnavailable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	t.Run("ClosedPort", func(t *testing.T) {
		t.Parallel()
		listener, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := listener.Addr().String()
		require.NoError(t, listener.Close())
		pool, err := pgxpool.New(ctx, "postgres://tessera@"+addr+"/tessera?connect_timeout=5")
		require.NoError(t, err)
		defer pool.Close()
		_, err = pool.Exec(ctx, "SELECT 1")
		require.Error(t, err)
		require.True(t, core.DBUnavailable(err), "%v", err)
	})

	t.Run("Outage", func(t *testing.T) {
		t.Parallel()
		pool, dbURL := testdb.Clone(t)
		conn, err := pool.Acquire(ctx) // opened before the outage, terminated by it
		require.NoError(t, err)
		defer conn.Release()
		testdb.Outage(t, dbURL)

		_, err = conn.Exec(ctx, "SELECT 1")
		require.Error(t, err)
		require.True(t, core.DBUnavailable(err), "terminated connection: %v", err)
		_, err = pgx.Connect(ctx, dbURL)
		require.Error(t, err)
		require.True(t, core.DBUnavailable(err), "refused connection: %v", err)
	})

	t.Run("WorkingDatabase", func(t *testing.T) {
		t.Parallel()
		tx := testdb.Tx(t)
		tenant := factory.Tenant(t, tx)
		for name, query := range map[string]string{
			"NoRows":         "SELECT 1 WHERE false",
			"UniqueConflict": "INSERT INTO tenants (id, name, slug) VALUES ('" + tenant.ID.String() + "', 'x', 'x')",
			"Syntax":         "SELEC 1",
		} {
			var one int
			_, err := tx.Exec(ctx, "SAVEPOINT s")
			require.NoError(t, err)
			err = tx.QueryRow(ctx, query).Scan(&one)
			require.Error(t, err, name)
			require.False(t, core.DBUnavailable(err), "%s: %v", name, err)
			_, err = tx.Exec(ctx, "ROLLBACK TO SAVEPOINT s")
			require.NoError(t, err)
		}
		cancelled, cancel := context.WithCancel(ctx)
		cancel()
		_, err := tx.Exec(cancelled, "SELECT 1")
		require.Error(t, err)
		require.False(t, core.DBUnavailable(err), "a cancelled request is not an outage: %v", err)
	})
}
