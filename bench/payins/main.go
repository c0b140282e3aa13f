// Command payins measures how many PayIns Tessera settles per second end to end through
// the webhook path: against a running `make run` (Tessera on :8080 with the fake BTCPay on
// :8081), it creates purchases, waits for their invoices, then marks every invoice paid on
// the fake BTCPay — which sends BTCPay's signed webhook to Tessera — and times until every
// PayIn is PAID (webhook recorded, settle job re-confirming with BTCPay, licence issued).
// See bench/README.md.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/tessera/tessera/internal/clock"
)

func main() {
	api := flag.String("api", "http://127.0.0.1:8080", "Tessera's address")
	fake := flag.String("fake", "http://127.0.0.1:8081", "the fake BTCPay's address")
	key := flag.String("key", os.Getenv("TESSERA_KEY"), "an admin API key of the tenant (or $TESSERA_KEY)")
	tenant := flag.String("tenant", "demo", "the tenant's slug")
	n := flag.Int("n", 500, "PayIns to settle")
	c := flag.Int("c", 16, "concurrent clients")
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

	start := clock.System{}.Now()
	webhook := make([]time.Duration, *n)
	parallel(*n, *c, func(i int) {
		t := clock.System{}.Now()
		b.must("POST", b.fake+"/fake/invoices/"+invoices[i]+"/settle", nil) // sends the signed webhook, waits for Tessera's answer
		webhook[i] = time.Since(t)
	})
	acknowledged := time.Since(start)
	parallel(*n, *c, func(i int) { b.await(ids[i], "PAID") })
	elapsed := time.Since(start)

	slices.Sort(webhook)
	fmt.Printf("%d PayIns settled end to end in %s: %.1f PayIns/s (webhooks acknowledged in %s: %.1f/s; settle+webhook p50 %s, p99 %s)\n",
		*n, elapsed.Round(time.Millisecond), float64(*n)/elapsed.Seconds(), acknowledged.Round(time.Millisecond),
		float64(*n)/acknowledged.Seconds(), webhook[len(webhook)/2].Round(time.Microsecond), webhook[len(webhook)*99/100].Round(time.Microsecond))
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
