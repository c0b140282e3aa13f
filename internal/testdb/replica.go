package testdb

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/migrate"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/sql"
)

// Pair is a Postgres primary cluster and its streaming replica, private to one test
// (Replicated): Tessera's migrated database on the primary, and the same database read on
// the replica, which replays the primary's WAL.
type Pair struct {
	// PrimaryURL and ReplicaURL are the migrated tessera database on the primary and on the
	// replica.
	PrimaryURL, ReplicaURL string
	dir                    string
}

// Replicated starts a small primary cluster and its streaming replica (pg_basebackup -R) in a
// new temporary directory, with internal/devdb/replica.sh, and migrates a tessera database on
// the primary; the replica has it once it has replayed the migration, which Replicated waits
// for. Both clusters are stopped and their directory removed when the test ends. It does not
// use DATABASE_URL's server: a replica of that shared cluster would copy every other test's
// databases and replay their WAL.
func Replicated(tb testing.TB) *Pair {
	tb.Helper()
	// Not tb.TempDir: its parent directory is its owner's alone, and as root the clusters run
	// as the postgres user, which must reach this one; short, too, for the sockets in it.
	dir, err := os.MkdirTemp("", "tessera-replica-") //nolint:usetesting // see above
	if err != nil {
		tb.Fatalf("testdb: %v", err)
	}
	p := &Pair{dir: dir}
	tb.Cleanup(func() {
		p.script(tb, "stop")
		if err := os.RemoveAll(dir); err != nil {
			tb.Errorf("testdb: remove the replica pair: %v", err)
		}
	})
	urls := strings.Fields(p.script(tb, "start"))
	if len(urls) != 2 {
		tb.Fatalf("testdb: replica.sh start printed %q, not two URLs", urls)
	}
	adminAt(tb, urls[0], "CREATE DATABASE tessera")
	p.PrimaryURL, p.ReplicaURL = withDatabase(urls[0], "tessera"), withDatabase(urls[1], "tessera")
	ctx := context.Background()
	pool, err := pg.NewPool(ctx, p.PrimaryURL)
	if err != nil {
		tb.Fatalf("testdb: %v", err)
	}
	defer pool.Close()
	if err := migrate.Up(ctx, pool, slog.New(slog.DiscardHandler)); err != nil {
		tb.Fatalf("testdb: migrate the primary: %v", err)
	}
	p.CatchUp(tb)
	return p
}

// Kill stops the replica at once, as a crash would (pg_ctl stop -m immediate): its
// connections are reset and new ones refused.
func (p *Pair) Kill(tb testing.TB) {
	tb.Helper()
	p.script(tb, "kill")
}

// Start starts the replica again after Kill; it streams what it missed from the primary.
func (p *Pair) Start(tb testing.TB) {
	tb.Helper()
	p.script(tb, "start")
}

// PauseReplay stops the replica replaying the WAL it receives (pg_wal_replay_pause): it lags
// further behind with every change committed on the primary. ResumeReplay lets it catch up.
func (p *Pair) PauseReplay(tb testing.TB) {
	tb.Helper()
	adminAt(tb, p.ReplicaURL, "SELECT pg_wal_replay_pause()")
}

// ResumeReplay undoes PauseReplay (pg_wal_replay_resume).
func (p *Pair) ResumeReplay(tb testing.TB) {
	tb.Helper()
	adminAt(tb, p.ReplicaURL, "SELECT pg_wal_replay_resume()")
}

// CatchUp waits (up to a minute) until the replica has replayed everything the primary had
// flushed when CatchUp was called.
func (p *Pair) CatchUp(tb testing.TB) {
	tb.Helper()
	ctx := context.Background()
	queries := sql.New()
	primary, err := pgx.Connect(ctx, p.PrimaryURL)
	if err != nil {
		tb.Fatalf("testdb: %v", err)
	}
	defer primary.Close(ctx) //nolint:errcheck // a read-only session
	flushed, err := queries.ReplicationFlushedLSN(ctx, primary)
	if err != nil {
		tb.Fatalf("testdb: the primary's WAL position: %v", err)
	}
	for deadline := (clock.System{}).Now().Add(time.Minute); ; time.Sleep(10 * time.Millisecond) {
		replayed, err := replayedLSN(ctx, queries, p.ReplicaURL)
		if err == nil && replayed >= flushed {
			return
		}
		if (clock.System{}).Now().After(deadline) {
			tb.Fatalf("testdb: the replica has not caught up with the primary in a minute (replayed %d of %d: %v)", replayed, flushed, err)
		}
	}
}

// replayedLSN is how far the replica at url has replayed the primary's WAL.
func replayedLSN(ctx context.Context, queries *sql.Queries, url string) (int64, error) {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return 0, err
	}
	defer conn.Close(ctx) //nolint:errcheck // a read-only session
	row, err := queries.ReplicationReplayedLSN(ctx, conn)
	return row.LSN, err
}

// script runs internal/devdb/replica.sh command on the pair's directory and returns its
// output.
func (p *Pair) script(tb testing.TB, command string) string {
	tb.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatalf("testdb: cannot locate internal/devdb/replica.sh")
	}
	cmd := exec.Command(filepath.Join(filepath.Dir(file), "..", "devdb", "replica.sh"), command, p.dir)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		tb.Fatalf("testdb: replica.sh %s: %v\n%s", command, err, stderr.String())
	}
	return string(out)
}
