// Command payins measures how many PayIns Tessera settles per second end to end through
// the webhook path: against a running `make run` (Tessera on :8080 with the fake BTCPay on
// :8081), it creates purchases, waits for their invoices, then marks every invoice paid on
// the fake BTCPay — which sends BTCPay's signed webhook to Tessera — and times until every
// PayIn is PAID (the webhook re-confirming the invoice with BTCPay, recording the delivery and
// settling it in its transaction, licence issued; a payin.settle job only where that fails).
// See bench/README.md.
//
//	go run ./bench/payins -key tsk_... -n 1000 -c 16
//
// Flags: -api and -fake are Tessera's and the fake BTCPay's addresses (make run's :8080 and
// :8081), -key an admin key of the tenant (or $TESSERA_KEY), -tenant its slug (demo), -n the
// PayIns to settle (500), -c the concurrent clients (16). With -database (default
// $DATABASE_URL, Tessera's database) it waits for PAID in the database rather than over HTTP
// and, when the server loads pg_stat_statements (the embedded database does), counts the SQL
// statements the settle phase ran per settled PayIn and prints them by statement.
//
// It also prints the CPU milliseconds per settled PayIn of each process of the settle phase
// (user + system time from /proc/<pid>/stat before and after): `tessera serve` and the fake
// BTCPay (the processes listening on -api's and -fake's ports), the Postgres processes of
// Tessera's cluster (from pg_stat_activity, with -database) and the bench itself.
//
// It records "PayIns settled" (/s, a fraction of pgbench TPC-B), when counted "statements per
// settled PayIn", and "CPU per settled PayIn" of serve, of the Postgres backends and in all
// (ms) with bench/internal/report.
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
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/bench/internal/benchdb"
	"github.com/tessera/tessera/bench/internal/report"
	"github.com/tessera/tessera/internal/clock"
)

func main() {
	api := flag.String("api", "http://127.0.0.1:8080", "Tessera's address")
	fake := flag.String("fake", "http://127.0.0.1:8081", "the fake BTCPay's address")
	key := flag.String("key", os.Getenv("TESSERA_KEY"), "an admin API key of the tenant (or $TESSERA_KEY)")
	tenant := flag.String("tenant", "demo", "the tenant's slug")
	n := flag.Int("n", 500, "PayIns to settle")
	c := flag.Int("c", 16, "concurrent clients")
	database := flag.String("database", os.Getenv("DATABASE_URL"), "Tessera's database, to wait for PAID in and count statements with pg_stat_statements (or $DATABASE_URL; empty: wait over HTTP, count nothing)")
	flag.Parse()
	if *key == "" {
		log.Fatal("an admin key is needed: -key or $TESSERA_KEY (make run prints one)")
	}
	b := &bench{api: *api, fake: *fake, key: *key, client: &http.Client{Timeout: 30 * time.Second}}

	suffix := fmt.Sprint(clock.System{}.Now().UnixNano())
	product := b.must("POST", b.api+"/v1/admin/products", map[string]any{"slug": "bench-" + suffix, "name": "Bench"})
	b.must("POST", b.api+"/v1/admin/policies", map[string]any{
		"product_id": product["id"], "slug": "bench-" + suffix, "name": "Bench", "listed_currency": "SAT",
		"listed_value": 1000, "is_recurring": false,
	})
	email := "bench-" + suffix + "@example.com"
	b.must("POST", b.api+"/v1/admin/customers", map[string]any{"email": email})

	ids := make([]string, *n)
	parallel(*n, *c, func(i int) {
		p := b.must("POST", b.api+"/v1/purchase", map[string]any{"tenant": *tenant, "policy": "bench-" + suffix, "customer_email": email})
		ids[i] = p["id"].(string)
	})
	invoices := make([]string, *n)
	parallel(*n, *c, func(i int) {
		invoices[i] = b.await(ids[i], "PENDING")["invoice"].(map[string]any)["invoice_id"].(string)
	})

	ctx := context.Background()
	var db *pgx.Conn
	var statements *benchdb.Statements
	if *database != "" {
		var err error
		if db, err = pgx.Connect(ctx, *database); err != nil {
			log.Fatal(err)
		}
		defer func() { _ = db.Close(ctx) }()
		statements, err = benchdb.StatementsStart(ctx, db)
		if errors.Is(err, benchdb.ErrNoStatements) {
			fmt.Fprintln(os.Stderr, "statements not counted:", err)
		} else if err != nil {
			log.Fatal(err)
		}
	}

	cpuBefore, err := cpuTake(ctx, db, *api, *fake)
	must(err)
	start := clock.System{}.Now()
	webhook := make([]time.Duration, *n)
	parallel(*n, *c, func(i int) {
		t := clock.System{}.Now()
		b.must("POST", b.fake+"/fake/invoices/"+invoices[i]+"/settle", nil) // sends the signed webhook, waits for Tessera's answer
		webhook[i] = time.Since(t)
	})
	acknowledged := time.Since(start)
	if db != nil {
		awaitPaid(ctx, db, ids)
	} else {
		parallel(*n, *c, func(i int) { b.await(ids[i], "PAID") })
	}
	elapsed := time.Since(start)
	cpuAfter, err := cpuTake(ctx, db, *api, *fake)
	must(err)

	slices.Sort(webhook)
	fmt.Printf("%d PayIns settled end to end in %s: %.1f PayIns/s (webhooks acknowledged in %s: %.1f/s; settle+webhook p50 %s, p99 %s)\n",
		*n, elapsed.Round(time.Millisecond), float64(*n)/elapsed.Seconds(), acknowledged.Round(time.Millisecond),
		float64(*n)/acknowledged.Seconds(), webhook[len(webhook)/2].Round(time.Microsecond), webhook[len(webhook)*99/100].Round(time.Microsecond))
	must(report.Add(report.Result{Name: "PayIns settled", Value: float64(*n) / elapsed.Seconds(), Unit: "/s", Limit: report.TPCB}))
	if statements != nil {
		totals, err := statements.Count(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println()
		totals.Print(os.Stdout, *n, "settled PayIn")
		must(report.Add(report.Result{Name: "statements per settled PayIn", Value: float64(totals.Calls) / float64(*n), Unit: "statements"}))
	}
	fmt.Println()
	cpu := cpuPrint(os.Stdout, cpuBefore, cpuAfter, *n, "settled PayIn")
	for _, g := range []string{"tessera serve", "postgres backends", "total"} {
		must(report.Add(report.Result{Name: "CPU per settled PayIn, " + g, Value: cpu[g] / float64(*n), Unit: "ms"}))
	}
}

// must exits on err.
func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}

// awaitPaid polls the database until every PayIn of ids is PAID.
func awaitPaid(ctx context.Context, db *pgx.Conn, ids []string) {
	deadline := clock.System{}.Now().Add(2 * time.Minute)
	for {
		var paid int
		if err := db.QueryRow(ctx, "SELECT count(*) FROM payins WHERE id = ANY($1::uuid[]) AND state = 'PAID' -- bench", ids).Scan(&paid); err != nil {
			log.Fatal(err)
		}
		if paid == len(ids) {
			return
		}
		if (clock.System{}).Now().After(deadline) {
			log.Fatalf("%d of %d PayIns PAID after 2 minutes", paid, len(ids))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type bench struct {
	api, fake, key string
	client         *http.Client
}

// must sends a JSON request and decodes the JSON answer, exiting on any failure.
func (b *bench) must(method, url string, body any) map[string]any {
	var payload io.Reader
	if body != nil {
		encoded, err := json.Marshal(body)
		if err != nil {
			log.Fatal(err)
		}
		payload = bytes.NewReader(encoded)
	}
	req, err := http.NewRequest(method, url, payload)
	if err != nil {
		log.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+b.key)
	res, err := b.client.Do(req)
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = res.Body.Close() }() // read to the end below: closing loses nothing
	raw, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode >= 300 {
		log.Fatalf("%s %s: %d %s %v", method, url, res.StatusCode, raw, err)
	}
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		log.Fatalf("%s %s: %v", method, url, err)
	}
	return out
}

// await polls a PayIn until it reaches state.
func (b *bench) await(id, state string) map[string]any {
	deadline := clock.System{}.Now().Add(2 * time.Minute)
	for {
		p := b.must("GET", b.api+"/v1/payins/"+id, nil)
		if p["state"] == state {
			return p
		}
		if (clock.System{}).Now().After(deadline) {
			log.Fatalf("payin %s is %v, not %s", id, p["state"], state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// parallel runs fn(0..n-1) on c goroutines.
func parallel(n, c int, fn func(int)) {
	next := make(chan int)
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for i := range next {
				fn(i)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}
