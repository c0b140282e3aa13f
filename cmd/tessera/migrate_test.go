package main

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/pressly/goose/v3"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/migrations"
)

//nolint:paralleltest // useDatabase points the commands at its database with t.Setenv
func TestMigrate(t *testing.T) {
	databaseURL := testdb.Empty(t)
	useDatabase(t, databaseURL)

	mustExecute(t, "migrate")
	requirePending(t, databaseURL, false)
	applied := appliedMigrations(t, databaseURL)

	mustExecute(t, "migrate")
	require.Equal(t, applied, appliedMigrations(t, databaseURL), "the second migrate applied something")
	requirePending(t, databaseURL, false)
}

func TestMigratePendingOnEmptyDatabase(t *testing.T) {
	t.Parallel()
	requirePending(t, testdb.Empty(t), true)
}

func TestMigrateConcurrentProcesses(t *testing.T) {
	t.Parallel()
	databaseURL := testdb.Empty(t)
	binary := filepath.Join(t.TempDir(), "tessera")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", binary, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build: %s", out)

	type process struct {
		cmd    *exec.Cmd
		output bytes.Buffer
	}
	processes := make([]*process, 2)
	for i := range processes {
		p := &process{cmd: exec.CommandContext(t.Context(), binary, "migrate")}
		p.cmd.Env = append(os.Environ(), "DATABASE_URL="+databaseURL)
		p.cmd.Stdout = &p.output
		p.cmd.Stderr = &p.output
		processes[i] = p
	}
	for _, p := range processes {
		require.NoError(t, p.cmd.Start())
	}
	for i, p := range processes {
		require.NoError(t, p.cmd.Wait(), "migrate process %d: %s", i, p.output.String())
	}

	requirePending(t, databaseURL, false)
	var want []int64
	for _, m := range appliedMigrations(t, databaseURL) {
		if m.Source == "goose" {
			want = append(want, m.Version)
		}
	}
	require.Equal(t, append([]int64{0}, migrationVersions(t)...), want,
		"goose_db_version must hold its initial row and each migration exactly once")
}

// appliedMigration is one row of River's or goose's record of applied migrations.
type appliedMigration struct {
	Source  string // "river" or "goose"
	Version int64
	At      string // when it was applied, to tell a re-applied migration apart
}

// appliedMigrations returns the database's record of applied River and goose migrations,
// ordered by source and version.
func appliedMigrations(t *testing.T, databaseURL string) []appliedMigration {
	t.Helper()
	rows, err := connect(t, databaseURL).Query(t.Context(), `
		SELECT 'river', version, created_at::text FROM river_migration
		UNION ALL
		SELECT 'goose', version_id, tstamp::text FROM goose_db_version
		ORDER BY 1, 2, 3`)
	require.NoError(t, err)
	applied, err := pgx.CollectRows(rows, pgx.RowToStructByPos[appliedMigration])
	require.NoError(t, err)
	return applied
}

// migrationVersions returns the versions of Tessera's migration files, in order.
func migrationVersions(t *testing.T) []int64 {
	t.Helper()
	names, err := fs.Glob(migrations.FS, "*.sql")
	require.NoError(t, err)
	require.NotEmpty(t, names)
	versions := make([]int64, len(names))
	for i, name := range names {
		versions[i], err = goose.NumericComponent(name)
		require.NoError(t, err)
	}
	return versions
}
