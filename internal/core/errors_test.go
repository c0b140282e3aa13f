package core_test

import (
	"context"
	"net"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/pg"
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
		pool, err := pg.NewPool(ctx, "postgres://tessera@"+addr+"/tessera?connect_timeout=5")
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

// TestTranslatedErrorText translates, at the data boundary (testdb.Tx is translated as core.DB
// translates), the errors of text Postgres cannot store, the backstop behind the API's
// screening of requests: each is ErrInvalid (a 422), never an unexplained 500.
func TestTranslatedErrorText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, statement string
		args            []any
	}{
		{"NUL", "SELECT $1::text", []any{"a\x00b"}},                 // 22021 character_not_in_repertoire
		{"InvalidUTF8", "SELECT $1::text", []any{"a\xffb"}},         // 22021
		{"Untranslatable", "SELECT convert_to('€', 'LATIN1')", nil}, // 22P05 untranslatable_character
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tx := testdb.Tx(t)
			_, err := tx.Exec(context.Background(), tc.statement, tc.args...)
			require.Error(t, err)
			require.ErrorIs(t, err, core.ErrInvalid)
			require.Equal(t, "invalid: text must be valid UTF-8 without NUL characters", err.Error())
		})
	}

	t.Run("TooLong", func(t *testing.T) { // 22001 string_data_right_truncation
		tx := testdb.Tx(t)
		_, err := tx.Exec(context.Background(), "CREATE TEMP TABLE short (v varchar(2))")
		require.NoError(t, err)
		_, err = tx.Exec(context.Background(), "INSERT INTO short VALUES ($1)", "abc")
		require.ErrorIs(t, err, core.ErrInvalid)
		require.Contains(t, err.Error(), "too long")
	})
}
