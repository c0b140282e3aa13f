package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// keyPattern is what an admin API key looks like.
const keyPattern = `^tsk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$`

// The CLI tests set DATABASE_URL, so none of them is parallel; each is one story on its own
// database.

//nolint:paralleltest // useDatabase points the commands at its database with t.Setenv
func TestTenantCreate(t *testing.T) {
	pool, databaseURL := testdb.Clone(t)
	useDatabase(t, databaseURL)

	out := mustExecute(t, "tenant", "create", "--slug", "acme-x", "--name", "X")
	fields := strings.Split(strings.TrimSuffix(out, "\n"), "\t")
	require.Len(t, fields, 2)
	id, err := uuid.Parse(fields[0])
	require.NoError(t, err)
	require.Equal(t, "acme-x", fields[1])
	tenant, err := sql.New().TenantGetBySlug(t.Context(), pool, "acme-x")
	require.NoError(t, err)
	require.Equal(t, id, tenant.ID)
	require.Equal(t, "X", tenant.Name)

	_, err = execute(t, "tenant", "create", "--slug", "acme-x", "--name", "Y")
	require.ErrorIs(t, err, core.ErrConflict)
	require.ErrorContains(t, err, "acme-x")
	require.Nil(t, tenant.ClockAt, "a tenant is live unless created with --sandbox")

	mustExecute(t, "tenant", "create", "--slug", "sandbox-x", "--sandbox", "--clock", "2030-01-01T00:00:00Z")
	sandbox, err := sql.New().TenantGetBySlug(t.Context(), pool, "sandbox-x")
	require.NoError(t, err)
	require.NotNil(t, sandbox.ClockAt)
	require.True(t, time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).Equal(*sandbox.ClockAt))

	before := clock.System{}.Now()
	mustExecute(t, "tenant", "create", "--slug", "sandbox-now", "--sandbox")
	sandbox, err = sql.New().TenantGetBySlug(t.Context(), pool, "sandbox-now")
	require.NoError(t, err)
	require.NotNil(t, sandbox.ClockAt, "--sandbox without --clock starts the clock now")
	require.WithinDuration(t, before, *sandbox.ClockAt, time.Minute)

	_, err = execute(t, "tenant", "create", "--slug", "sandbox-bad", "--sandbox", "--clock", "tomorrow")
	require.ErrorIs(t, err, core.ErrInvalid)
	require.ErrorContains(t, err, `"tomorrow"`)
	_, err = execute(t, "tenant", "create", "--slug", "live-clock", "--clock", "2030-01-01T00:00:00Z")
	require.ErrorIs(t, err, core.ErrInvalid)
	require.ErrorContains(t, err, "--sandbox")
}

//nolint:paralleltest // useDatabase points the commands at its database with t.Setenv
func TestKeyCommands(t *testing.T) {
	pool, databaseURL := testdb.Clone(t)
	tenant := factory.Tenant(t, pool)
	useDatabase(t, databaseURL)

	secret := strings.TrimSpace(mustExecute(t, "key", "create", "--tenant", tenant.Slug, "--name", "n"))
	require.Regexp(t, keyPattern, secret)
	key, err := core.APIKeyAuthenticate(t.Context(), pool, secret)
	require.NoError(t, err, "the printed key does not authenticate")
	require.Equal(t, tenant.ID, key.TenantID)

	listed := listKey(t, tenant.Slug, key.Prefix)
	require.Equal(t, []string{key.ID.String(), key.Prefix, "n"}, listed[:3])
	require.Equal(t, "-", listed[4], "a new key is listed as revoked")

	out := mustExecute(t, "key", "revoke", "--tenant", tenant.Slug, listed[0])
	require.Contains(t, out, key.ID.String())
	require.NotEqual(t, "-", listKey(t, tenant.Slug, key.Prefix)[4], "a revoked key is listed as active")
	_, err = core.APIKeyAuthenticate(t.Context(), pool, secret)
	require.ErrorIs(t, err, core.ErrUnauthenticated)

	_, err = execute(t, "key", "revoke", "--tenant", tenant.Slug, listed[0])
	require.ErrorIs(t, err, core.ErrConflict)

	_, err = execute(t, "key", "list", "--tenant", "unknown")
	require.ErrorIs(t, err, core.ErrNotFound)
	require.ErrorContains(t, err, `tenant "unknown"`)
}

func TestBootstrap(t *testing.T) {
	pool, databaseURL := testdb.Clone(t)
	useDatabase(t, databaseURL)
	t.Setenv("TESSERA_ADDR", ":9123")
	t.Setenv("MAKELEVEL", "") // as typed in a shell, not under make (make test sets it)
	keyFile := filepath.Join(t.TempDir(), "tessera", "admin-key")

	out := mustExecute(t, "bootstrap", "--key-file", keyFile)
	require.Contains(t, out, `Created tenant "demo".`)
	require.Contains(t, out, "API docs: http://localhost:9123/docs")
	require.Contains(t, out, "(also written to "+keyFile+")")
	require.Contains(t, out, strings.Repeat("=", 72)+"\n", "the key stands out from the logs around it")
	secret := regexp.MustCompile(`Admin API key \(shown once\): (\S+)`).FindStringSubmatch(out)
	require.Len(t, secret, 2, "no key in: %s", out)
	require.Regexp(t, keyPattern, secret[1])
	tenant, err := sql.New().TenantGetBySlug(t.Context(), pool, "demo")
	require.NoError(t, err)
	key, err := core.APIKeyAuthenticate(t.Context(), pool, secret[1])
	require.NoError(t, err, "the printed key does not authenticate")
	require.Equal(t, tenant.ID, key.TenantID)
	saved, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	require.Equal(t, secret[1]+"\n", string(saved))
	info, err := os.Stat(keyFile)
	require.NoError(t, err)
	require.Equal(t, os.FileMode(0o600), info.Mode().Perm())

	// The hint for another key works as printed.
	hint := regexp.MustCompile(`Another admin key: tessera (key create --tenant demo --name me)\s`).FindStringSubmatch(out)
	require.Len(t, hint, 2, "no key create hint in: %s", out)
	another := strings.TrimSpace(mustExecute(t, strings.Fields(hint[1])...))
	key, err = core.APIKeyAuthenticate(t.Context(), pool, another)
	require.NoError(t, err, "the hinted command's key does not authenticate")
	require.Equal(t, tenant.ID, key.TenantID)

	out = mustExecute(t, "bootstrap", "--key-file", keyFile)
	require.Contains(t, out, `Tenant "demo" exists`)
	require.Contains(t, out, "API docs: http://localhost:9123/docs")
	require.NotContains(t, out, "tsk_")
	require.Equal(t, 1, count(t, pool, "tenants"))
	require.Equal(t, 2, count(t, pool, "api_keys"))
	saved2, err := os.ReadFile(keyFile)
	require.NoError(t, err)
	require.Equal(t, saved, saved2, "a second bootstrap keeps the first key's file")
}

// TestBootstrapUnderMake checks the hint make run prints for another key: make key, which
// finds make run's database itself (the shell make run was started from has no DATABASE_URL).
func TestBootstrapUnderMake(t *testing.T) {
	pool, databaseURL := testdb.Clone(t)
	useDatabase(t, databaseURL)
	t.Setenv("MAKELEVEL", "1")

	out := mustExecute(t, "bootstrap")
	hint := regexp.MustCompile(`Another admin key: make (key TENANT=demo NAME=me)\n`).FindStringSubmatch(out)
	require.Len(t, hint, 2, "no make key hint in: %s", out)
	cmd := exec.CommandContext(t.Context(), "make", append([]string{"-s", "-C", "../.."}, strings.Fields(hint[1])...)...)
	cmd.Env = append(os.Environ(), "MAKELEVEL=", "MAKEFLAGS=", "MFLAGS=") // a shell's make, not a sub-make of make test
	printed, err := cmd.Output()
	require.NoError(t, err, "make %s", hint[1])
	lines := strings.Split(strings.TrimSpace(string(printed)), "\n")
	key, err := core.APIKeyAuthenticate(t.Context(), pool, lines[len(lines)-1])
	require.NoError(t, err, "make key printed: %s", printed)
	tenant, err := sql.New().TenantGetBySlug(t.Context(), pool, "demo")
	require.NoError(t, err)
	require.Equal(t, tenant.ID, key.TenantID)
}

// listKey runs key list and returns the fields of the line of the key with prefix: id,
// prefix, name, created and revoked.
func listKey(t *testing.T, tenantSlug, prefix string) []string {
	t.Helper()
	out := mustExecute(t, "key", "list", "--tenant", tenantSlug)
	for _, line := range strings.Split(out, "\n") {
		if fields := strings.Fields(line); len(fields) == 5 && fields[1] == prefix {
			return fields
		}
	}
	require.FailNow(t, "key not listed", "no key %s in:\n%s", prefix, out)
	return nil
}

// count returns how many rows table has.
func count(t *testing.T, pool *pgxpool.Pool, table string) int {
	t.Helper()
	var n int
	require.NoError(t, pool.QueryRow(t.Context(), "SELECT count(*) FROM "+table).Scan(&n))
	return n
}
