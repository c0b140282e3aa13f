package testdb

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tessera/tessera/internal/factory"
)

// PgBouncerBin is Debian's pgbouncer, which make test installs.
const PgBouncerBin = "/usr/sbin/pgbouncer"

// PgBouncerApplicationName is the application_name of the server connections PgBouncer opens:
// a test counts them in pg_stat_activity.
const PgBouncerApplicationName = "pgbouncer"

// PgBouncer starts PgBouncer on a free loopback port in front of the database at dbURL (a
// Clone or Empty), pooling in transaction mode with at most poolSize server connections, and
// returns the URL of the database through it. Clients connect as any user without a password
// (auth_type any); PgBouncer logs in to Postgres as dbURL's user over dbURL's Unix socket.
// PgBouncer stops when the test ends, before the database is dropped. As root, PgBouncer
// (which refuses root) runs as the postgres user, as the embedded database does.
func PgBouncer(tb testing.TB, dbURL string, poolSize int) string {
	tb.Helper()
	setup(tb)
	server, err := pgconn.ParseConfig(dbURL)
	if err != nil {
		tb.Fatalf("testdb: pgbouncer: %v", err)
	}
	database := server.Database
	dir, err := os.MkdirTemp("", "pgbouncer-") //nolint:usetesting // tb.TempDir's parent is private to root; the postgres user must reach this directory
	if err != nil {
		tb.Fatalf("testdb: pgbouncer: %v", err)
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) }) //lint:swallow a temporary directory left behind is harmless
	if err := os.Chmod(dir, 0o755); err != nil { // readable by the postgres user
		tb.Fatalf("testdb: pgbouncer: %v", err)
	}

	// The chosen port may be taken between choosing and binding: then PgBouncer exits and
	// another port is tried.
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("testdb: pgbouncer: %v", err)
		}
		ini := filepath.Join(dir, "pgbouncer.ini")
		conf := fmt.Sprintf(`[databases]
%s = host=%s port=%d user=%s dbname=%s application_name=%s

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = %d
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 500
`, database, server.Host, server.Port, server.User, database, PgBouncerApplicationName, port, poolSize)
		if err := os.WriteFile(ini, []byte(conf), 0o644); err != nil {
			tb.Fatalf("testdb: pgbouncer: %v", err)
		}
		proxyURL := fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", url.User(server.User).String(), port, url.PathEscape(database))
		err = startPgBouncer(tb, ini, proxyURL)
		if err == nil {
			return proxyURL
		}
		if attempt == 3 {
			tb.Fatalf("testdb: pgbouncer: %v", err)
		}
	}
}

// startPgBouncer runs pgbouncer with ini until the test ends and waits until proxyURL
// answers a query through it.
func startPgBouncer(tb testing.TB, ini, proxyURL string) error {
	if _, err := os.Stat(PgBouncerBin); err != nil {
		return fmt.Errorf("%s is missing: install Debian's pgbouncer (make test does): %w", PgBouncerBin, err)
	}
	var out factory.Output
	cmd := exec.Command(PgBouncerBin, ini)
	cmd.Stdout, cmd.Stderr = &out, &out
	if os.Geteuid() == 0 {
		owner, err := user.Lookup("postgres")
		if err != nil {
			return fmt.Errorf("run as the postgres user: %w", err)
		}
		uid, _ := strconv.ParseUint(owner.Uid, 10, 32) //lint:swallow user ids from the system's database are numbers
		gid, _ := strconv.ParseUint(owner.Gid, 10, 32) //lint:swallow as above
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", PgBouncerBin, err)
	}
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		_ = cmd.Wait() //lint:swallow it is stopped on purpose, or its output says why it exited
	}()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) //lint:swallow it may have exited already
		<-exited
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		select {
		case <-exited:
			return fmt.Errorf("pgbouncer exited: %s", out.String())
		case <-ctx.Done():
			stop()
			return fmt.Errorf("pgbouncer did not answer within 30 s: %s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if err := ping(ctx, proxyURL); err == nil {
			break
		}
	}
	tb.Cleanup(func() {
		stop()
		if tb.Failed() {
			tb.Logf("pgbouncer output:\n%s", out.String())
		}
	})
	return nil
}

// ping connects to dbURL and runs a query.
func ping(ctx context.Context, dbURL string) (err error) {
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, conn.Close(ctx)) }()
	_, err = conn.Exec(ctx, "SELECT 1", pgx.QueryExecModeSimpleProtocol)
	return err
}

// freePort returns a loopback port nothing listens on now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	port := ln.Addr().(*net.TCPAddr).Port
	return port, ln.Close()
}
