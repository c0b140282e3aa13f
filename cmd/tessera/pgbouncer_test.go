package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/fakebtcpay"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// pgbouncerPool is the test's PgBouncer default_pool_size: the server connections that three
// Tessera processes, with up to TESSERA_DB_MAX_CONNS client connections each, share.
const pgbouncerPool = 3

// The PgBouncer test's load: validating goroutines per serve process and requests each, and
// referral snapshots read at the same time.
const pgbouncerClients, pgbouncerRequests, pgbouncerSnapshots = 8, 10, 4

// TestPgBouncer runs Tessera spread out behind PgBouncer in transaction mode, as the README's
// "Behind PgBouncer" says: two serve processes and a worker process, all with
// TESSERA_DB_POOLER=transaction, connect through one PgBouncer whose pgbouncerPool server
// connections they share. A buyer purchases on one serve process; a process's River client,
// polling, creates the invoice at the fake BTCPay; its settlement webhook reaches the other
// serve process while BTCPay fails its re-confirmation, so a payin.settle job settles it; the
// licence then validates under concurrent requests to
// both, an admin reads a referral snapshot (a query planned for its arguments), and River UI
// lists the jobs. migrate refuses to run through the pooler.
func TestPgBouncer(t *testing.T) {
	t.Parallel()
	pool, directURL := testdb.Clone(t)
	proxyURL := testdb.PgBouncer(t, directURL, pgbouncerPool)

	tenant := factory.Tenant(t, pool)
	_, adminKey := factory.APIKey(t, pool, tenant.ID)
	policy := factory.Policy(t, pool, tenant.ID, factory.PolicyPrice(sql.CurrencySAT, 50_000), factory.PolicyEntitlements("export"))
	customer := factory.Customer(t, pool, tenant.ID)

	// The fake BTCPay's address is known now; it starts once it knows where to send webhooks.
	provider := httptest.NewUnstartedServer(nil)
	t.Cleanup(provider.Close)
	const store, apiKey, webhookSecret, operatorPassword = "store-pgbouncer", "api-key-pgbouncer", "webhook-secret-pgbouncer", "operator-password-pgbouncer"
	env := append(os.Environ(),
		"DATABASE_URL="+proxyURL,
		"TESSERA_DB_POOLER=transaction",
		"TESSERA_DB_MAX_CONNS=8",
		"TESSERA_SECRET_KEY="+factory.SecretKey,
		"TESSERA_BTCPAY_URL=http://"+provider.Listener.Addr().String(),
		"TESSERA_BTCPAY_STORE_ID="+store,
		"TESSERA_BTCPAY_API_KEY="+apiKey,
		"TESSERA_BTCPAY_WEBHOOK_SECRET="+webhookSecret,
		"TESSERA_OPERATOR_PASSWORD="+operatorPassword,
		"TESSERA_VALIDATE_PER_KEY=10000", "TESSERA_VALIDATE_KEY_BURST=10000",
		"TESSERA_VALIDATE_PER_CLIENT=10000", "TESSERA_VALIDATE_CLIENT_BURST=10000",
		"TESSERA_WORKERS=4",
		"TESSERA_ADDR=127.0.0.1:0",
		"TESSERA_METRICS_ADDR=127.0.0.1:0",
		"TESSERA_LOG_FORMAT=json", "TESSERA_LOG_LEVEL=info",
	)

	migrate := exec.Command(os.Args[0], "-test.run=^$")
	migrate.Env = append(env, childEnv+"=migrate")
	out, err := migrate.CombinedOutput()
	require.Error(t, err, "migrate ran through the pooler:\n%s", out)
	require.Contains(t, string(out), errMigratePooled.Error())

	serveA := startProcess(t, append(env, childEnv+"=serve"))
	serveB := startProcess(t, append(env, childEnv+"=serve"))
	worker := startProcess(t, append(env, childEnv+"=worker"))
	a, b := "http://"+loggedAddr(t, serveA, "tessera serving", "addr"), "http://"+loggedAddr(t, serveB, "tessera serving", "addr")
	loggedAddr(t, worker, "tessera working jobs", "metrics")

	fake, err := fakebtcpay.New(fakebtcpay.Config{StoreID: store, APIKey: apiKey, WebhookSecret: webhookSecret, WebhookURL: b + "/v1/providers/btcpay/webhook"})
	require.NoError(t, err)
	provider.Config.Handler = fake.Handler()
	provider.Start()

	client := &http.Client{Timeout: waitFor}
	call := func(method, url, key string, body any) (int, map[string]any) {
		t.Helper()
		var in io.Reader
		if body != nil {
			b, err := json.Marshal(body)
			require.NoError(t, err)
			in = bytes.NewReader(b)
		}
		req, err := http.NewRequest(method, url, in)
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		res, err := client.Do(req)
		require.NoError(t, err)
		defer func() { require.NoError(t, res.Body.Close()) }()
		var answer map[string]any
		require.NoError(t, json.NewDecoder(res.Body).Decode(&answer))
		return res.StatusCode, answer
	}
	payInState := func(id string) map[string]any {
		status, payIn := call(http.MethodGet, a+"/v1/payins/"+id, "", nil)
		require.Equal(t, http.StatusOK, status, payIn)
		return payIn
	}

	status, payIn := call(http.MethodPost, a+"/v1/purchase", "", map[string]any{
		"tenant": tenant.Slug, "policy": policy.Slug, "customer_id": customer.ID,
	})
	require.Equal(t, http.StatusCreated, status, payIn)
	id := payIn["id"].(string)
	require.Eventually(t, func() bool { return payInState(id)["state"] == "PENDING" }, crashStart, 50*time.Millisecond,
		"no process created the invoice")
	invoiceID := payInState(id)["invoice"].(map[string]any)["invoice_id"].(string)
	require.NoError(t, fake.Settle(invoiceID, 50_000))
	fake.FailNext(1) // the webhook cannot settle at once: it leaves it to a payin.settle job
	statuses, err := fake.SendWebhook(invoiceID, fakebtcpay.EventInvoiceSettled, 1)
	require.NoError(t, err)
	require.Equal(t, []int{http.StatusOK}, statuses)
	require.Eventually(t, func() bool { return payInState(id)["state"] == "PAID" }, crashStart, 50*time.Millisecond,
		"no process settled the PayIn")
	licenseKey := payInState(id)["license_key"].(string)

	var wg sync.WaitGroup
	errs := make(chan error, 2*pgbouncerClients*pgbouncerRequests+pgbouncerSnapshots)
	for _, base := range []string{a, b} {
		for range pgbouncerClients {
			wg.Go(func() {
				for range pgbouncerRequests {
					errs <- validate(client, base, licenseKey)
				}
			})
		}
	}
	for range pgbouncerSnapshots {
		wg.Go(func() {
			status, snapshot := call(http.MethodGet, b+"/v1/admin/customers/"+customer.ID.String()+"/referrals", adminKey, nil)
			if status != http.StatusOK {
				errs <- fmt.Errorf("referral snapshot: %d %v", status, snapshot)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	req, err := http.NewRequest(http.MethodGet, a+"/riverui/api/jobs?state=completed&limit=100", nil)
	require.NoError(t, err)
	req.SetBasicAuth("operator", operatorPassword)
	res, err := client.Do(req)
	require.NoError(t, err)
	jobs, err := io.ReadAll(res.Body)
	require.NoError(t, errors.Join(err, res.Body.Close()))
	require.Equal(t, http.StatusOK, res.StatusCode, string(jobs))
	for _, kind := range []string{"payin.create_invoice", "payin.settle"} {
		require.Contains(t, string(jobs), `"kind":"`+kind+`"`, "River UI lists the completed %s job", kind)
	}

	var servers int
	require.NoError(t, pool.QueryRow(t.Context(), `
		SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`,
		testdb.PgBouncerApplicationName).Scan(&servers))
	require.LessOrEqual(t, servers, pgbouncerPool, "PgBouncer's server connections")
	require.NotContains(t, serveA.output.String()+serveB.output.String()+worker.output.String(), "prepared statement")

	for _, p := range []*process{serveA, serveB, worker} {
		p.stop(t)
	}

	// No process listened: River's notifier would have left its LISTEN on a server
	// connection, which PgBouncer hands to any client's next transaction. pgbouncerPool
	// transactions at once hold every server connection.
	cfg, err := pgxpool.ParseConfig(proxyURL)
	require.NoError(t, err)
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeCacheDescribe
	cfg.MaxConns = pgbouncerPool
	proxy, err := pgxpool.NewWithConfig(t.Context(), cfg)
	require.NoError(t, err)
	defer proxy.Close()
	listening := 0
	for range pgbouncerPool {
		tx, err := proxy.Begin(t.Context())
		require.NoError(t, err)
		defer tx.Rollback(t.Context()) //nolint:errcheck // read only
		var channels int
		require.NoError(t, tx.QueryRow(t.Context(), "SELECT count(*) FROM pg_listening_channels()").Scan(&channels))
		listening += channels
	}
	require.Zero(t, listening, "channels listened to on PgBouncer's server connections")
}

// validate validates key on the serve process at base and says why it was not valid.
func validate(client *http.Client, base, key string) error {
	body, err := json.Marshal(map[string]string{"key": key, "entitlement": "export"})
	if err != nil {
		return err
	}
	res, err := client.Post(base+"/v1/licenses/validate", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	answer, err := io.ReadAll(res.Body)
	if err := errors.Join(err, res.Body.Close()); err != nil {
		return err
	}
	var v struct{ Valid bool }
	if res.StatusCode != http.StatusOK || json.Unmarshal(answer, &v) != nil || !v.Valid {
		return fmt.Errorf("validate on %s: %d %s", base, res.StatusCode, answer)
	}
	return nil
}

// loggedAddr waits until p logs msg (JSON logs) and returns the address its field holds,
// without a scheme or path.
func loggedAddr(t *testing.T, p *process, msg, field string) string {
	t.Helper()
	var addr string
	require.Eventually(t, func() bool {
		for line := range strings.Lines(p.output.String()) {
			var entry map[string]any
			if json.Unmarshal([]byte(line), &entry) == nil && entry["msg"] == msg {
				addr, _ = entry[field].(string)
				addr = strings.TrimPrefix(strings.TrimSuffix(addr, "/metrics"), "http://")
				return true
			}
		}
		return false
	}, crashStart, 20*time.Millisecond, "the process never logged %q:\n%s", msg, p.output.String())
	return addr
}
