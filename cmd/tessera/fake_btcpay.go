package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"time"

	"github.com/spf13/cobra"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/fakebtcpay"
)

// fakeBTCPayShutdown bounds how long fake-btcpay drains requests when it stops.
const fakeBTCPayShutdown = 10 * time.Second

// decimalRate is the shape of a --rate-* flag: a plain decimal string.
var decimalRate = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)

func newFakeBTCPayCommand() *cobra.Command {
	var (
		addr    string
		cfg     fakebtcpay.Config
		rateUSD string
		rateEUR string
	)
	cmd := &cobra.Command{
		Use:   "fake-btcpay",
		Short: "Run a fake BTCPay Server on loopback for development (no bitcoin moves)",
		Long: "fake-btcpay serves the part of BTCPay Server's Greenfield API that Tessera uses, keeps\n" +
			"invoices in memory and sends signed webhooks to --webhook-url when an invoice is marked\n" +
			"settled, expired or invalid: open an invoice's checkout link and press \"Mark paid\", or\n" +
			"POST /fake/invoices/{id}/settle. It prints the TESSERA_BTCPAY_* values to give Tessera and\n" +
			"runs until SIGINT or SIGTERM.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg.Rates = map[string]string{}
			for currency, rate := range map[string]string{"USD": rateUSD, "EUR": rateEUR} {
				if rate == "" {
					continue
				}
				if !decimalRate.MatchString(rate) {
					return fmt.Errorf("--rate-%s %q is not a decimal number like 50000.00", currency, rate)
				}
				cfg.Rates[currency] = rate
			}
			cfg.Clock = clock.System{}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("listen on %s: %w", addr, err)
			}
			return runFakeBTCPay(cmd.Context(), cmd.OutOrStdout(), cfg, ln)
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:8081", "address to listen on")
	f.StringVar(&cfg.StoreID, "store-id", "fake-store", "the store id the server answers for")
	f.StringVar(&cfg.APIKey, "api-key", "fake-api-key", "the Greenfield API key it accepts")
	f.StringVar(&cfg.WebhookSecret, "webhook-secret", "fake-webhook-secret", "the secret signing its webhooks (BTCPay-Sig)")
	f.StringVar(&cfg.WebhookURL, "webhook-url", "http://127.0.0.1:8080/v1/providers/btcpay/webhook", "where webhooks are sent (empty: none)")
	f.StringVar(&rateUSD, "rate-usd", "50000.00", "BTC_USD rate of the rates endpoint (empty: none)")
	f.StringVar(&rateEUR, "rate-eur", "", "BTC_EUR rate of the rates endpoint (empty: none)")
	return cmd
}

// runFakeBTCPay serves a fake BTCPay server configured by cfg on ln until ctx is cancelled,
// after printing to out the settings Tessera needs; then it drains requests and returns.
func runFakeBTCPay(ctx context.Context, out io.Writer, cfg fakebtcpay.Config, ln net.Listener) error {
	defer func() { _ = ln.Close() }() // for when it fails before serving; after Shutdown, closing again fails harmlessly
	fake, err := fakebtcpay.New(cfg)
	if err != nil {
		return err
	}
	base := "http://" + loopbackAddr(ln.Addr().String())
	if _, err := fmt.Fprintf(out,
		"Fake BTCPay Server listening on %s (no bitcoin moves).\n"+
			"Give Tessera:\n"+
			"  TESSERA_BTCPAY_URL=%s\n  TESSERA_BTCPAY_STORE_ID=%s\n  TESSERA_BTCPAY_API_KEY=%s\n  TESSERA_BTCPAY_WEBHOOK_SECRET=%s\n"+
			"Webhooks go to: %s\n"+
			"Invoices: curl %s/fake/invoices\n"+
			"Mark one paid: curl -X POST %s/fake/invoices/INVOICE_ID/settle\n",
		base, base, cfg.StoreID, cfg.APIKey, cfg.WebhookSecret, orNone(cfg.WebhookURL), base, base); err != nil {
		return fmt.Errorf("print settings: %w", err)
	}

	srv := &http.Server{Handler: fake.Handler(), ReadHeaderTimeout: 10 * time.Second}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	var runErr error
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		runErr = fmt.Errorf("serve fake btcpay: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), fakeBTCPayShutdown)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		runErr = errors.Join(runErr, fmt.Errorf("drain fake btcpay requests: %w", err))
	}
	return runErr
}

// loopbackAddr is addr with an unspecified host (":8081", "0.0.0.0:8081") replaced by
// 127.0.0.1, so printed URLs can be used as they are.
func loopbackAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil { //lint:swallow an address without a port is printed as it is
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port)
}

// orNone is s, or "(none)" when it is empty.
func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
