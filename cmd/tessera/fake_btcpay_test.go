package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/btcpay"
	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/fakebtcpay"
	"github.com/tessera/tessera/internal/payment"
)

func TestFakeBTCPay(t *testing.T) {
	t.Parallel()

	var (
		mu     sync.Mutex
		events []payment.WebhookEvent
		client *btcpay.Client
	)
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		event, err := client.ParseWebhook(body, r.Header)
		if err != nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		events = append(events, event)
		mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(receiver.Close)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	base := "http://" + ln.Addr().String()
	ctx, stop := context.WithCancel(context.Background())
	var out bytes.Buffer
	exited := make(chan error, 1)
	go func() {
		exited <- runFakeBTCPay(ctx, &out, fakebtcpay.Config{
			StoreID: "fake-store", APIKey: "fake-api-key", WebhookSecret: "fake-webhook-secret",
			WebhookURL: receiver.URL, Clock: clock.System{}, Rates: map[string]string{"USD": "50000.00"},
		}, ln)
	}()
	t.Cleanup(func() {
		stop()
		require.NoError(t, <-exited)
	})

	client, err = btcpay.New(btcpay.Config{
		BaseURL: base, StoreID: "fake-store", APIKey: "fake-api-key", WebhookSecret: "fake-webhook-secret",
	})
	require.NoError(t, err)
	rate, err := client.Rate(t.Context(), "USD")
	require.NoError(t, err)
	require.Equal(t, int64(5_000_000), rate.MinorPerBTC)

	inv, err := client.CreateInvoice(t.Context(), payment.InvoiceRequest{OrderID: "order-1", AmountSats: 50_000})
	require.NoError(t, err)
	require.Equal(t, base+"/i/"+inv.ID, inv.CheckoutURL)

	// What the README tells humans to do: curl -X POST .../fake/invoices/ID/settle.
	res, err := http.Post(base+"/fake/invoices/"+inv.ID+"/settle", "", nil)
	require.NoError(t, err)
	require.NoError(t, res.Body.Close())
	require.Equal(t, http.StatusOK, res.StatusCode)

	mu.Lock()
	require.Len(t, events, 1, "the demo endpoint delivers its webhook before answering")
	require.Equal(t, payment.WebhookEvent{
		DeliveryID: events[0].DeliveryID, OriginalDeliveryID: events[0].DeliveryID,
		Type: "InvoiceSettled", InvoiceID: inv.ID, OrderID: "order-1",
	}, events[0])
	mu.Unlock()
	got, err := client.GetInvoice(t.Context(), inv.ID)
	require.NoError(t, err)
	require.Equal(t, payment.InvoiceSettled, got.Status)
	require.Equal(t, int64(50_000), got.PaidSats)

	stop()
	require.NoError(t, <-exited)
	exited <- nil // for the cleanup
	require.Contains(t, out.String(), "TESSERA_BTCPAY_URL="+base+"\n")
	require.Contains(t, out.String(), "TESSERA_BTCPAY_WEBHOOK_SECRET=fake-webhook-secret\n")
	_, err = http.Get(base + "/fake/invoices") //nolint:bodyclose // the request fails: there is no body
	require.Error(t, err, "the listener is closed after shutdown")
}

func TestFakeBTCPayCommand(t *testing.T) {
	t.Parallel()

	t.Run("RefusesBadRate", func(t *testing.T) {
		t.Parallel()
		_, err := execute(t, "fake-btcpay", "--addr", "127.0.0.1:0", "--rate-usd", "5e4")
		require.ErrorContains(t, err, "--rate-USD")
	})
	t.Run("RefusesEmptyStore", func(t *testing.T) {
		t.Parallel()
		_, err := execute(t, "fake-btcpay", "--addr", "127.0.0.1:0", "--store-id", "")
		require.ErrorContains(t, err, "StoreID is required")
	})
	t.Run("StopsOnCancel", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		root := newRootCommand()
		var out bytes.Buffer
		root.SetArgs([]string{"fake-btcpay", "--addr", "127.0.0.1:0"})
		root.SetOut(&out)
		root.SetErr(io.Discard)
		require.NoError(t, root.ExecuteContext(ctx))
		require.Contains(t, out.String(), "TESSERA_BTCPAY_STORE_ID=fake-store\n")
	})
}

func TestLoopbackAddr(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"127.0.0.1:8081": "127.0.0.1:8081",
		":8081":          "127.0.0.1:8081",
		"0.0.0.0:8081":   "127.0.0.1:8081",
		"[::]:8081":      "127.0.0.1:8081",
		"example:1":      "example:1",
	} {
		require.Equal(t, want, loopbackAddr(in), in)
	}
}
