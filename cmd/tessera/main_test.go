package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/migrate"
	"github.com/tessera/tessera/internal/pg"
)

// childEnv, when set, makes the test binary run the tessera command line it holds (arguments
// separated by spaces) instead of the tests: the crash tests start real tessera processes so.
const childEnv = "TESSERA_TEST_RUN_COMMAND"

func TestMain(m *testing.M) {
	if args := os.Getenv(childEnv); args != "" {
		os.Args = append([]string{"tessera"}, strings.Fields(args)...)
		main() // exits 1 on failure
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// execute runs the tessera command line in process with args and returns what it printed
// on stdout. Cobra's error output is kept out of the test log; the error is returned.
func execute(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	root := newRootCommand()
	root.SetArgs(args)
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	err := root.ExecuteContext(t.Context())
	return stdout.String(), err
}

// mustExecute is execute for commands that must succeed.
func mustExecute(t *testing.T, args ...string) string {
	t.Helper()
	out, err := execute(t, args...)
	require.NoError(t, err, "tessera %v printed: %s", args, out)
	return out
}

// useDatabase points the commands run by execute at databaseURL for the rest of the test,
// gives them factory.SecretKey and limits their logs to errors. It sets environment variables,
// so the test cannot be parallel; get the database from testdb first, since testdb reads
// DATABASE_URL once per process.
func useDatabase(t *testing.T, databaseURL string) {
	t.Helper()
	t.Setenv("DATABASE_URL", databaseURL)
	t.Setenv("TESSERA_SECRET_KEY", factory.SecretKey)
	t.Setenv("TESSERA_LOG_LEVEL", "error")
}

// connect returns a pool on databaseURL, closed when the test ends.
func connect(t *testing.T, databaseURL string) *pgxpool.Pool {
	t.Helper()
	pool, err := pg.NewPool(context.Background(), databaseURL)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// requirePending asserts whether the database at databaseURL has pending migrations.
func requirePending(t *testing.T, databaseURL string, want bool) {
	t.Helper()
	pending, err := migrate.Pending(t.Context(), connect(t, databaseURL))
	require.NoError(t, err)
	require.Equal(t, want, pending)
}
