// Command validate measures licence validation (POST /v1/licenses/validate) over HTTP against
// Postgres running the same SQL: against a running Tessera, it creates through the admin API a
// product, a recurring policy (max_machines 3, entitlement export), a customer and a
// subscription, activates the machine bench-machine on the licence, then runs wrk
// (bench/validate.lua: key, fingerprint and entitlement, the full verdict path) at 32 and 8
// connections, and pgbench running LicenseValidate's own SQL (read from sql/licenses.sql.go,
// with the created licence's parameters) at 32 clients for as long. It prints Markdown and
// records with bench/internal/report: validations/s at 32 connections (a fraction of
// report.ValidateSQL), the pgbench tps (report.ValidateSQL), and p50/p99 at 8 and 32
// connections.
//
//	DATABASE_URL=... go run ./bench/validate -api http://127.0.0.1:8080 -key tsk_...
//
// Tessera must run with the validation rate limits lifted (TESSERA_VALIDATE_PER_KEY,
// TESSERA_VALIDATE_KEY_BURST, TESSERA_VALIDATE_PER_CLIENT, TESSERA_VALIDATE_CLIENT_BURST
// set to 1000000): a 429 makes the run fail. DATABASE_URL is Tessera's database (pgbench
// runs on it). Run it from the repository's root. Flags:
//
//	-api URL      Tessera's address (default http://127.0.0.1:8080)
//	-key KEY      an admin API key of the tenant (default $TESSERA_KEY)
//	-d DURATION   each wrk and pgbench run's duration (default 20s)
//	-threads N    wrk's threads and pgbench's -j (default 2)
//	-load         also measure p50/p99 at 8 connections while a payment run is in
//	              progress: -payins purchases, settled on the fake BTCPay at -fake as
//	              bench/payins does (their invoices and settlements are Tessera's jobs)
//	-fake URL     the fake BTCPay's address, for -load (default http://127.0.0.1:8081)
//	-payins N     PayIns settled during the -load run (default 2000; it says when they
//	              were all paid before wrk ended)
//	-tenant SLUG  the tenant's slug, for -load's purchases (default demo)
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tessera/tessera/bench/internal/benchsql"
	"github.com/tessera/tessera/bench/internal/pgbench"
	"github.com/tessera/tessera/bench/internal/report"
	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/licensekey"
)

// fingerprint and entitlement are what every validation sends (bench/validate.lua).
const (
	fingerprint = "bench-machine"
	entitlement = "export"
)

// options are the command's flags.
type options struct {
	api, key, fake, tenant string
	duration               time.Duration
	threads, payins        int
	load                   bool
}

func main() {
	var o options
	flag.StringVar(&o.api, "api", "http://127.0.0.1:8080", "Tessera's address")
	flag.StringVar(&o.key, "key", os.Getenv("TESSERA_KEY"), "an admin API key of the tenant (or $TESSERA_KEY)")
	flag.DurationVar(&o.duration, "d", 20*time.Second, "each wrk and pgbench run's duration")
	flag.IntVar(&o.threads, "threads", 2, "wrk's threads and pgbench's -j")
	flag.BoolVar(&o.load, "load", false, "also measure at 8 connections while a payment run is in progress")
	flag.StringVar(&o.fake, "fake", "http://127.0.0.1:8081", "the fake BTCPay's address (-load)")
	flag.IntVar(&o.payins, "payins", 2000, "PayIns settled during the -load run")
	flag.StringVar(&o.tenant, "tenant", "demo", "the tenant's slug (-load)")
	flag.Parse()
	if o.key == "" {
		log.Fatal("an admin key is needed: -key or $TESSERA_KEY (make run prints one)")
	}
	if err := run(context.Background(), o); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, o options) error {
	databaseURL := os.Getenv("DATABASE_URL")
	if databaseURL == "" {
		return errors.New("DATABASE_URL is not set (Tessera's database, for pgbench)")
	}
	query, err := benchsql.QueryText("sql/licenses.sql.go", "licenseValidate")
	if err != nil {
		return err
	}
	c := &client{api: o.api, key: o.key, http: &http.Client{Timeout: 30 * time.Second}}
	licenceKey, err := c.setup()
	if err != nil {
		return err
	}
	log.Printf("the bench licence (for wrk by hand, TESSERA_BENCH_KEY): %s", licenceKey)
	script, err := pgbenchScript(query, licenceKey)
	if err != nil {
		return err
	}

	fmt.Printf("## Licence validation\n\n%s, wrk -t%d, pgbench -j%d -M prepared, %s each.\n\n",
		clock.System{}.Now().UTC().Format("2006-01-02 15:04"), o.threads, o.threads, o.duration)
	c32, err := runWrk(ctx, o, licenceKey, 32)
	if err != nil {
		return err
	}
	tps, err := runPgbench(ctx, o, databaseURL, script, 32)
	if err != nil {
		return err
	}
	c8, err := runWrk(ctx, o, licenceKey, 8)
	if err != nil {
		return err
	}
	fmt.Println("| run | requests/s | p50 | p90 | p99 |")
	fmt.Println("| --- | --- | --- | --- | --- |")
	fmt.Printf("| wrk, 32 connections | %.0f | %s |\n", c32.rps, c32.latencies())
	fmt.Printf("| pgbench LicenseValidate SQL, 32 clients | %.0f | | | |\n", tps)
	fmt.Printf("| wrk, 8 connections | %.0f | %s |\n", c8.rps, c8.latencies())
	results := []report.Result{
		{Name: report.ValidateSQL, Value: tps, Unit: "/s"},
		{Name: "validations, 32 connections", Value: c32.rps, Unit: "/s", Limit: report.ValidateSQL},
		{Name: "validation p50, 32 connections", Value: ms(c32.p50), Unit: "ms"},
		{Name: "validation p99, 32 connections", Value: ms(c32.p99), Unit: "ms"},
		{Name: "validation p50, 8 connections", Value: ms(c8.p50), Unit: "ms"},
		{Name: "validation p99, 8 connections", Value: ms(c8.p99), Unit: "ms"},
	}
	if o.load {
		loaded, settled, elapsed, err := runLoaded(ctx, o, c, licenceKey)
		if err != nil {
			return err
		}
		fmt.Printf("| wrk, 8 connections, while %d PayIns settle (%.0f/s) | %.0f | %s |\n",
			settled, float64(settled)/elapsed.Seconds(), loaded.rps, loaded.latencies())
		results = append(results,
			report.Result{Name: "validation p50, 8 connections, payment run", Value: ms(loaded.p50), Unit: "ms"},
			report.Result{Name: "validation p99, 8 connections, payment run", Value: ms(loaded.p99), Unit: "ms"})
	}
	fmt.Printf("\nvalidations/s at 32 connections: %.0f%% of pgbench's tps.\n", 100*c32.rps/tps)
	for _, r := range results {
		if err := report.Add(r); err != nil {
			return err
		}
	}
	return nil
}

// ms is d in milliseconds.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// client calls Tessera's API with the admin key.
type client struct {
	api, key string
	http     *http.Client
}

// setup creates the catalog, customer and subscription through the API, activates the
// machine on the licence, checks that a validation is VALID, and returns the licence key.
func (c *client) setup() (string, error) {
	suffix := strconv.FormatInt(clock.System{}.Now().UnixNano(), 10)
	var product, policy, customer struct {
		ID string `json:"id"`
	}
	if err := c.call("POST", "/v1/admin/products", map[string]any{"slug": "validate-" + suffix, "name": "Validate"}, &product); err != nil {
		return "", err
	}
	if err := c.call("POST", "/v1/admin/policies", map[string]any{
		"product_id": product.ID, "slug": "validate-" + suffix, "name": "Validate", "listed_currency": "SAT",
		"listed_value": 1000, "is_recurring": true, "period_days": 30, "max_machines": 3, "entitlements": []string{entitlement},
	}, &policy); err != nil {
		return "", err
	}
	if err := c.call("POST", "/v1/admin/customers", map[string]any{"email": "validate-" + suffix + "@example.com"}, &customer); err != nil {
		return "", err
	}
	var sub struct {
		License struct {
			Key string `json:"key"`
		} `json:"license"`
	}
	if err := c.call("POST", "/v1/admin/subscriptions", map[string]any{"customer_id": customer.ID, "policy_id": policy.ID}, &sub); err != nil {
		return "", err
	}
	key := sub.License.Key
	if err := c.call("POST", "/v1/machines/activate", map[string]any{"key": key, "fingerprint": fingerprint}, nil); err != nil {
		return "", err
	}
	var verdict struct {
		Code string `json:"code"`
	}
	if err := c.call("POST", "/v1/licenses/validate", map[string]any{"key": key, "fingerprint": fingerprint, "entitlement": entitlement}, &verdict); err != nil {
		return "", err
	}
	if verdict.Code != "VALID" {
		return "", fmt.Errorf("the bench licence validates as %s, not VALID", verdict.Code)
	}
	return key, nil
}

// call sends a JSON request to Tessera and decodes its 2xx answer into out (when not nil).
func (c *client) call(method, path string, body, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequest(method, c.api+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+c.key)
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	answer, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, answer)
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(answer, out)
}

// pgbenchScript is query as a pgbench script: the licence's tenant and id, the fingerprint
// and the entitlement are pgbench variables (sent as parameters with -M prepared, as Tessera
// sends them), now is the time of the run, version and build date are NULL as in wrk's
// requests.
func pgbenchScript(query, licenceKey string) (string, error) {
	parsed, err := licensekey.Parse(licenceKey)
	if err != nil {
		return "", fmt.Errorf("parse the bench licence key: %w", err)
	}
	now := clock.System{}.Now().UTC().Format(time.RFC3339Nano)
	script := strings.NewReplacer(
		"$1::", "'"+now+"'::",
		"$2::", "NULL::",
		"$3::", "NULL::",
		"$4::", ":fingerprint::",
		"$5::", ":entitlement::",
		"$6::", "'"+parsed.TenantID.String()+"'::",
		"$7::", "'"+parsed.LicenseID.String()+"'::",
	).Replace(query)
	if regexp.MustCompile(`\$[0-9]`).MatchString(script) {
		return "", errors.New("LicenseValidate has a parameter the pgbench script does not set: update bench/validate")
	}
	// pgbench ends a command at a semicolon or the end of the script; one statement per line.
	return strings.Join(strings.Fields(script), " ") + ";\n", nil
}

// runPgbench runs script on databaseURL at clients clients for o.duration and returns its
// transactions per second.
func runPgbench(ctx context.Context, o options, databaseURL, script string, clients int) (float64, error) {
	dir, err := os.MkdirTemp("", "validate-pgbench")
	if err != nil {
		return 0, err
	}
	defer func() { _ = os.RemoveAll(dir) }()
	file := filepath.Join(dir, "validate.sql")
	if err := os.WriteFile(file, []byte(script), 0o600); err != nil {
		return 0, err
	}
	tps, out, err := pgbench.Run(ctx, "-n", "-M", "prepared", "-c", strconv.Itoa(clients), "-j", strconv.Itoa(o.threads),
		"-T", strconv.Itoa(int(o.duration.Seconds())), "-D", "fingerprint="+fingerprint, "-D", "entitlement="+entitlement,
		"-f", file, databaseURL)
	if err != nil {
		return 0, err
	}
	if failed := regexp.MustCompile(`number of failed transactions: ([1-9][0-9]*)`).FindStringSubmatch(out); failed != nil {
		return 0, fmt.Errorf("pgbench: %s transactions failed: %s", failed[1], out)
	}
	return tps, nil
}

// wrkResult is what one wrk run measured.
type wrkResult struct {
	rps           float64
	p50, p90, p99 time.Duration
}

func (r wrkResult) latencies() string {
	return fmt.Sprintf("%s | %s | %s", r.p50.Round(10*time.Microsecond), r.p90.Round(10*time.Microsecond), r.p99.Round(10*time.Microsecond))
}

// runWrk runs wrk with bench/validate.lua at conns connections for o.duration.
func runWrk(ctx context.Context, o options, licenceKey string, conns int) (wrkResult, error) {
	cmd := exec.CommandContext(ctx, "wrk", "-t"+strconv.Itoa(o.threads), "-c"+strconv.Itoa(conns),
		"-d"+strconv.Itoa(int(o.duration.Seconds()))+"s", "--latency", "-s", "bench/validate.lua", o.api+"/v1/licenses/validate")
	cmd.Env = append(os.Environ(), "TESSERA_BENCH_KEY="+licenceKey)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return wrkResult{}, fmt.Errorf("wrk: %w: %s", err, out)
	}
	return parseWrk(out)
}

// parseWrk reads wrk --latency's output: requests/s and the latency distribution. Any
// non-2xx answer or socket error fails the run (a 429 means the rate limits are not lifted).
func parseWrk(out []byte) (wrkResult, error) {
	var r wrkResult
	if m := regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`).FindSubmatch(out); m != nil {
		return r, fmt.Errorf("wrk got %s non-2xx answers (are the validation rate limits lifted?):\n%s", m[1], out)
	}
	if m := regexp.MustCompile(`Socket errors: .*`).Find(out); m != nil {
		return r, fmt.Errorf("wrk: %s:\n%s", m, out)
	}
	m := regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in wrk's output:\n%s", out)
	}
	var err error
	if r.rps, err = strconv.ParseFloat(string(m[1]), 64); err != nil {
		return r, err
	}
	for _, p := range []struct {
		label string
		to    *time.Duration
	}{{"50%", &r.p50}, {"90%", &r.p90}, {"99%", &r.p99}} {
		m := regexp.MustCompile(`(?m)^\s+` + p.label + `\s+([0-9.]+(?:us|ms|s|m))\s*$`).FindSubmatch(out)
		if m == nil {
			return r, fmt.Errorf("no %s latency in wrk's output:\n%s", p.label, out)
		}
		if *p.to, err = time.ParseDuration(string(m[1])); err != nil {
			return r, err
		}
	}
	return r, nil
}

// runLoaded creates o.payins purchases and waits for their invoices, then settles them all
// on the fake BTCPay at 16 at a time (bench/payins' path: webhook, settle, licence)
// while wrk runs at 8 connections, and waits for them to be paid. It returns wrk's
// measurement and how many PayIns were paid how fast.
func runLoaded(ctx context.Context, o options, c *client, licenceKey string) (wrkResult, int, time.Duration, error) {
	suffix := strconv.FormatInt(clock.System{}.Now().UnixNano(), 10)
	var product struct {
		ID string `json:"id"`
	}
	if err := c.call("POST", "/v1/admin/products", map[string]any{"slug": "load-" + suffix, "name": "Load"}, &product); err != nil {
		return wrkResult{}, 0, 0, err
	}
	if err := c.call("POST", "/v1/admin/policies", map[string]any{"product_id": product.ID, "slug": "load-" + suffix, "name": "Load",
		"listed_currency": "SAT", "listed_value": 1000, "is_recurring": false}, nil); err != nil {
		return wrkResult{}, 0, 0, err
	}
	email := "load-" + suffix + "@example.com"
	if err := c.call("POST", "/v1/admin/customers", map[string]any{"email": email}, nil); err != nil {
		return wrkResult{}, 0, 0, err
	}
	ids := make([]string, o.payins)
	invoices := make([]string, o.payins)
	err := parallel(o.payins, 16, func(i int) error {
		var p struct {
			ID string `json:"id"`
		}
		if err := c.call("POST", "/v1/purchase", map[string]any{"tenant": o.tenant, "policy": "load-" + suffix, "customer_email": email}, &p); err != nil {
			return err
		}
		ids[i] = p.ID
		inv, err := c.await(ids[i], "PENDING")
		invoices[i] = inv
		return err
	})
	if err != nil {
		return wrkResult{}, 0, 0, err
	}

	start := clock.System{}.Now()
	var settled error
	var elapsed time.Duration
	var wg sync.WaitGroup
	wg.Go(func() {
		settled = parallel(o.payins, 16, func(i int) error {
			if err := c.send("POST", o.fake+"/fake/invoices/"+invoices[i]+"/settle"); err != nil {
				return err
			}
			_, err := c.await(ids[i], "PAID")
			return err
		})
		elapsed = time.Since(start)
	})
	loaded, err := runWrk(ctx, o, licenceKey, 8)
	wg.Wait()
	if err := errors.Join(err, settled); err != nil {
		return wrkResult{}, 0, 0, err
	}
	if elapsed < o.duration {
		log.Printf("the %d PayIns settled in %s, before wrk's %s ended: raise -payins to load the whole run", o.payins, elapsed.Round(time.Millisecond), o.duration)
	}
	return loaded, o.payins, elapsed, nil
}

// await polls PayIn id until its state is state, and returns its invoice's id.
func (c *client) await(id, state string) (string, error) {
	deadline := clock.System{}.Now().Add(5 * time.Minute)
	for {
		var p struct {
			State   string `json:"state"`
			Invoice *struct {
				InvoiceID string `json:"invoice_id"`
			} `json:"invoice"`
		}
		if err := c.call("GET", "/v1/payins/"+id, nil, &p); err != nil {
			return "", err
		}
		if p.State == state && p.Invoice != nil {
			return p.Invoice.InvoiceID, nil
		}
		if (clock.System{}).Now().After(deadline) {
			return "", fmt.Errorf("PayIn %s is still %s after 5 minutes, not %s", id, p.State, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// send posts an empty request to url (the fake BTCPay) and expects a 2xx answer.
func (c *client) send(method, url string) error {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, b)
	}
	return nil
}

// parallel runs fn(0..n-1) on c goroutines and returns the errors.
func parallel(n, c int, fn func(i int) error) error {
	next := make(chan int)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for i := range next {
				errs[i] = fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return errors.Join(errs...)
}
