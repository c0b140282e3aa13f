// Command webhook-receiver receives Tessera's webhooks as a tenant's backend would: it checks
// each request's Standard Webhooks signature with the endpoint's secret (WEBHOOK_SECRET,
// whsec_...), prints every verified event as one JSON line and answers 204, and answers 401
// to a request it cannot verify. It exits after -count verified events (0: never).
//
//	WEBHOOK_SECRET=whsec_... go run ./examples/webhook-receiver -addr 127.0.0.1:9092 -count 2
package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9092", "address to listen on")
	count := flag.Int("count", 0, "exit after this many verified events (0: never)")
	flag.Parse()
	secret := os.Getenv("WEBHOOK_SECRET")
	if !strings.HasPrefix(secret, "whsec_") {
		log.Fatal("WEBHOOK_SECRET must be the endpoint's whsec_... secret")
	}
	verified := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
		if err != nil || !verify(secret, r.Header, body) {
			log.Printf("refused a request that is not signed with the endpoint's secret")
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		fmt.Printf("verified %s %s\n", r.Header.Get("webhook-id"), body)
		w.WriteHeader(http.StatusNoContent)
		verified <- struct{}{}
	})
	server := &http.Server{Addr: *addr, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for n := 1; ; n++ {
			<-verified
			if n == *count {
				_ = server.Shutdown(context.Background()) // waits for the last answer to go out
				return
			}
		}
	}()
	if err := server.ListenAndServe(); err != http.ErrServerClosed {
		log.Fatal(err)
	}
	<-stopped
}

// verify reports whether a webhook request is from Tessera: body is the raw request body,
// secret the endpoint's whsec_... secret.
func verify(secret string, h http.Header, body []byte) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	ts, tsErr := strconv.ParseInt(h.Get("webhook-timestamp"), 10, 64)
	if err != nil || tsErr != nil || time.Since(time.Unix(ts, 0)).Abs() > 5*time.Minute {
		return false // a bad secret, or a missing, stale or future timestamp (a replay)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(h.Get("webhook-id") + "." + h.Get("webhook-timestamp") + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, signature := range strings.Fields(h.Get("webhook-signature")) {
		if hmac.Equal([]byte(signature), []byte(want)) {
			return true
		}
	}
	return false
}
