package main

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// waitFor bounds every poll of the serve tests.
const waitFor = 10 * time.Second

// server is run serving on loopback on its own database, with a tenant and its key.
type server struct {
	addr   string
	pool   *pgxpool.Pool
	tenant sql.Tenant
	key    string
	client *http.Client
	stop   context.CancelFunc // cancels run's context
	exited chan struct{}      // closed when run has returned
	err    error              // what run returned, once exited is closed
}

// startServer starts run on a database of its own (testdb.Clone) and waits until it answers
// /healthz, with serveConfig changed by configure. The test's cleanup stops it.
func startServer(t *testing.T, configure ...func(*Config)) *server {
	t.Helper()
	pool, databaseURL := testdb.Clone(t)
	return startServerOn(t, pool, databaseURL, configure...)
}

// startServerOn is startServer on the migrated database at databaseURL, which pool reaches.
func startServerOn(t *testing.T, pool *pgxpool.Pool, databaseURL string, configure ...func(*Config)) *server {
	t.Helper()
	tenant := factory.Tenant(t, pool)
	_, key := factory.APIKey(t, pool, tenant.ID)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)

	ctx, stop := context.WithCancel(context.Background())
	s := &server{
		addr: ln.Addr().String(), pool: pool, tenant: tenant, key: key,
		client: &http.Client{Transport: &http.Transport{}, Timeout: waitFor},
		stop:   stop, exited: make(chan struct{}),
	}
	go func() {
		defer close(s.exited)
		cfg := serveConfig(databaseURL, s.addr)
		for _, c := range configure {
			c(&cfg)
		}
		s.err = run(ctx, cfg, ln, servesAPI)
		_ = ln.Close() // run leaves it open when it fails before serving (requests must not hang); closed already when it served
	}()
	t.Cleanup(func() {
		stop()
		<-s.exited
		s.client.CloseIdleConnections()
	})

	require.Eventually(t, func() bool {
		select {
		case <-s.exited:
			return true // reported below
		default:
		}
		res, err := s.get("/healthz")
		return err == nil && res.status == http.StatusOK
	}, waitFor, 10*time.Millisecond, "/healthz never answered 200")
	select {
	case <-s.exited:
		require.FailNow(t, "run returned before serving", "run returned %v", s.err)
	default:
	}
	return s
}

// serveConfig is a configuration for run with every field set.
func serveConfig(databaseURL, addr string) Config {
	return Config{
		DatabaseURL:     databaseURL,
		SecretKey:       factory.SecretKey,
		Addr:            addr,
		LogLevel:        "error",
		LogFormat:       "text",
		Workers:         2,
		WebhookWorkers:  2,
		WebhookTimeout:  10 * time.Second,
		JobTimeout:      time.Minute,
		DBMaxConns:      10,
		ShutdownTimeout: 10 * time.Second,
		IdempotencyTTL:  24 * time.Hour,

		ValidatePerKey: 5, ValidateKeyBurst: 20, ValidatePerClient: 50, ValidateClientBurst: 100,
		BTCPayURL: "http://127.0.0.1:9", BTCPayStoreID: "store", BTCPayAPIKey: "key", BTCPayWebhookSecret: "secret",
		RateMaxAge:   time.Minute,
		OperatorUser: "operator",
	}
}

// response is a finished request.
type response struct {
	status int
	header http.Header
	body   string
}

// get sends GET path with the server's key.
func (s *server) get(path string) (response, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+s.addr+path, nil)
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	return s.send(req)
}

// send sends req and reads the response.
func (s *server) send(req *http.Request) (response, error) {
	res, err := s.client.Do(req)
	if err != nil {
		return response{}, err
	}
	body, err := io.ReadAll(res.Body)
	return response{status: res.StatusCode, header: res.Header, body: string(body)}, errors.Join(err, res.Body.Close())
}

func TestRunServesReadyz(t *testing.T) {
	t.Parallel()
	s := startServer(t)

	res, err := s.get("/readyz")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.status, res.body)
}

func TestRunRefusesPendingMigrations(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = ln.Close() }) // run closes it when it serves: a second close fails, harmlessly

	err = run(t.Context(), serveConfig(testdb.Empty(t), ln.Addr().String()), ln, servesAPI)
	require.ErrorContains(t, err, "tessera migrate")
}

func TestRunDrainsInFlightRequests(t *testing.T) {
	t.Parallel()
	s := startServer(t)
	ctx := t.Context()

	// Hold the tenants table so that reading the key's tenant waits.
	lock, err := s.pool.Begin(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { lock.Rollback(context.WithoutCancel(ctx)) }) //nolint:errcheck // released below unless the test failed
	_, err = lock.Exec(ctx, "LOCK TABLE tenants IN ACCESS EXCLUSIVE MODE")
	require.NoError(t, err)
	var lockPID int
	require.NoError(t, lock.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&lockPID))

	type result struct {
		response
		err error
	}
	inFlight := make(chan result, 1)
	go func() {
		res, err := s.get("/v1/admin/tenant")
		inFlight <- result{res, err}
	}()
	require.Eventually(t, func() bool {
		var waiting bool
		err := s.pool.QueryRow(ctx, `
			SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			               WHERE wait_event_type = 'Lock' AND $1 = ANY (pg_blocking_pids(pid)))`,
			lockPID).Scan(&waiting)
		return err == nil && waiting
	}, waitFor, 10*time.Millisecond, "the request never waited on the lock")

	s.stop()
	require.Eventually(t, func() bool {
		conn, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			require.NoError(t, conn.Close())
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	}, waitFor, 10*time.Millisecond, "the listener still accepts connections after shutdown began")

	select {
	case <-s.exited:
		require.FailNow(t, "run returned before draining the request in flight", "run returned %v", s.err)
	case res := <-inFlight:
		require.FailNow(t, "the request finished while the lock was held", "status %d, error %v", res.status, res.err)
	default:
	}

	require.NoError(t, lock.Rollback(ctx))
	res := <-inFlight
	require.NoError(t, res.err)
	require.Equal(t, http.StatusOK, res.status, res.body)
	require.Contains(t, res.body, s.tenant.ID.String())

	select {
	case <-s.exited:
		require.NoError(t, s.err)
	case <-time.After(waitFor):
		require.FailNow(t, "run did not return after draining")
	}
}
