package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/fakestore"
	"github.com/tessera/tessera/internal/testdb"
)

//nolint:paralleltest // useDatabase points the commands at its database with t.Setenv
func TestImportLicenses(t *testing.T) {
	pool, databaseURL := testdb.Clone(t)
	useDatabase(t, databaseURL)
	tenant := factory.Tenant(t, pool)
	store := factory.UpstreamStore(t, pool, tenant.ID, "https://store.example.com", "k")

	dir := t.TempDir()
	file := filepath.Join(dir, "licences.ndjson")
	require.NoError(t, writeFakeExport(file, 25, fakestore.NewServer("k")))
	count := func() int {
		var n int
		require.NoError(t, pool.QueryRow(context.Background(), "SELECT count(*) FROM licenses WHERE tenant_id = $1", tenant.ID).Scan(&n))
		return n
	}

	out := mustExecute(t, "import", "licenses", "--tenant", tenant.Slug, "--store", store.ID.String(), file)
	require.Contains(t, out, "created 25, updated 0, unchanged 0")
	out = mustExecute(t, "import", "licenses", "--tenant", tenant.Slug, "--store", store.ID.String(), file)
	require.Contains(t, out, "created 0, updated 0, unchanged 25", "re-importing never duplicates")
	require.Equal(t, 25, count())

	bad := filepath.Join(dir, "bad.ndjson")
	good, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(bad, []byte(strings.Replace(string(good), `"lic-0003"`, `""`, 1)+"{\"external_license_id\":\"new\"}\n"), 0o600))
	_, err = execute(t, "import", "licenses", "--tenant", tenant.Slug, "--store", store.ID.String(), bad)
	require.ErrorContains(t, err, "3 invalid rows; nothing was imported")
	require.Equal(t, 25, count())
}
