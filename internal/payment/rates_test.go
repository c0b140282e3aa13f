package payment_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/payment"
)

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestFixed(t *testing.T) {
	t.Parallel()

	t.Run("Rates", func(t *testing.T) {
		t.Parallel()
		clk := clock.NewManual(start)
		fixed, err := payment.NewFixed(clk, map[string]int64{"USD": 5_000_000, "EUR": 4_600_000})
		require.NoError(t, err)
		rate, err := fixed.Rate(t.Context(), "usd")
		require.NoError(t, err)
		require.Equal(t, payment.Rate{Currency: "USD", MinorPerBTC: 5_000_000, Source: "fixed", FetchedAt: start}, rate)
		_, err = fixed.Rate(t.Context(), "GBP")
		require.ErrorIs(t, err, payment.ErrNoRate)
	})
	for _, tt := range []struct {
		name  string
		clock clock.Clock
		rates map[string]int64
		err   string
	}{
		{name: "NoClock", rates: map[string]int64{"USD": 1}, err: "clock is required"},
		{name: "ZeroRate", clock: clock.System{}, rates: map[string]int64{"USD": 0}, err: "not positive"},
		{name: "LowerCaseCurrency", clock: clock.System{}, rates: map[string]int64{"usd": 1}, err: "not an upper-case ISO code"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := payment.NewFixed(tt.clock, tt.rates)
			require.ErrorContains(t, err, tt.err)
		})
	}
}

// countingSource is a RateSource counting its fetches; it fails while failing is set and
// blocks each fetch on gate when gate is not nil.
type countingSource struct {
	fetches atomic.Int64
	failing atomic.Bool
	gate    chan struct{}
	clock   clock.Clock
}

func (s *countingSource) Rate(ctx context.Context, currency string) (payment.Rate, error) {
	n := s.fetches.Add(1)
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return payment.Rate{}, ctx.Err()
		}
	}
	if s.failing.Load() {
		return payment.Rate{}, errors.New("source down")
	}
	return payment.Rate{Currency: currency, MinorPerBTC: 5_000_000 + n, Source: "counting", FetchedAt: s.clock.Now()}, nil
}

func TestCached(t *testing.T) {
	t.Parallel()

	t.Run("RefetchesAfterMaxAge", func(t *testing.T) {
		t.Parallel()
		clk := clock.NewManual(start)
		source := &countingSource{clock: clk}
		cached := payment.NewCached(source, clk, time.Minute)

		first, err := cached.Rate(t.Context(), "USD")
		require.NoError(t, err)
		require.Equal(t, int64(5_000_001), first.MinorPerBTC)
		clk.Advance(time.Minute - time.Microsecond)
		again, err := cached.Rate(t.Context(), "usd")
		require.NoError(t, err)
		require.Equal(t, first, again)
		require.Equal(t, int64(1), source.fetches.Load())

		clk.Advance(time.Microsecond)
		fresh, err := cached.Rate(t.Context(), "USD")
		require.NoError(t, err)
		require.Equal(t, int64(5_000_002), fresh.MinorPerBTC)
		require.Equal(t, clk.Now(), fresh.FetchedAt)
	})
	t.Run("PerCurrency", func(t *testing.T) {
		t.Parallel()
		clk := clock.NewManual(start)
		source := &countingSource{clock: clk}
		cached := payment.NewCached(source, clk, time.Minute)
		usd, err := cached.Rate(t.Context(), "USD")
		require.NoError(t, err)
		eur, err := cached.Rate(t.Context(), "EUR")
		require.NoError(t, err)
		require.Equal(t, "EUR", eur.Currency)
		require.NotEqual(t, usd.MinorPerBTC, eur.MinorPerBTC)
		require.Equal(t, int64(2), source.fetches.Load())
	})
	t.Run("ErrorsNotCached", func(t *testing.T) {
		t.Parallel()
		clk := clock.NewManual(start)
		source := &countingSource{clock: clk}
		source.failing.Store(true)
		cached := payment.NewCached(source, clk, time.Minute)
		_, err := cached.Rate(t.Context(), "USD")
		require.ErrorContains(t, err, "source down")
		source.failing.Store(false)
		rate, err := cached.Rate(t.Context(), "USD")
		require.NoError(t, err)
		require.Equal(t, int64(5_000_002), rate.MinorPerBTC)
		require.Equal(t, int64(2), source.fetches.Load())
	})
	t.Run("StaleRateNotServedOnError", func(t *testing.T) {
		t.Parallel()
		clk := clock.NewManual(start)
		source := &countingSource{clock: clk}
		cached := payment.NewCached(source, clk, time.Minute)
		_, err := cached.Rate(t.Context(), "USD")
		require.NoError(t, err)
		clk.Advance(time.Minute)
		source.failing.Store(true)
		_, err = cached.Rate(t.Context(), "USD")
		require.ErrorContains(t, err, "source down")
	})
	t.Run("ConcurrentCallersShareOneFetch", func(t *testing.T) {
		t.Parallel()
		clk := clock.NewManual(start)
		source := &countingSource{clock: clk, gate: make(chan struct{})}
		cached := payment.NewCached(source, clk, time.Minute)

		const callers = 20
		rates := make(chan payment.Rate, callers)
		var wg sync.WaitGroup
		for range callers {
			wg.Go(func() {
				rate, err := cached.Rate(context.Background(), "USD")
				if err == nil {
					rates <- rate
				}
			})
		}
		require.Eventually(t, func() bool { return source.fetches.Load() == 1 }, 10*time.Second, time.Millisecond)
		close(source.gate)
		wg.Wait()
		close(rates)
		require.Equal(t, int64(1), source.fetches.Load())
		var got []payment.Rate
		for r := range rates {
			got = append(got, r)
		}
		require.Len(t, got, callers)
		for _, r := range got {
			require.Equal(t, int64(5_000_001), r.MinorPerBTC)
		}
	})
	t.Run("WaitingRespectsContext", func(t *testing.T) {
		t.Parallel()
		clk := clock.NewManual(start)
		source := &countingSource{clock: clk, gate: make(chan struct{})}
		cached := payment.NewCached(source, clk, time.Minute)
		done := make(chan error, 1)
		go func() {
			_, err := cached.Rate(context.Background(), "USD")
			done <- err
		}()
		require.Eventually(t, func() bool { return source.fetches.Load() == 1 }, 10*time.Second, time.Millisecond)
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := cached.Rate(ctx, "USD")
		require.ErrorIs(t, err, context.Canceled)
		close(source.gate)
		require.NoError(t, <-done)
	})
	t.Run("PanicsOnBadArguments", func(t *testing.T) {
		t.Parallel()
		clk := clock.NewManual(start)
		require.Panics(t, func() { payment.NewCached(nil, clk, time.Minute) })
		require.Panics(t, func() { payment.NewCached(&countingSource{}, nil, time.Minute) })
		require.Panics(t, func() { payment.NewCached(&countingSource{}, clk, 0) })
	})
	t.Run("CachesFixed", func(t *testing.T) {
		t.Parallel()
		clk := clock.NewManual(start)
		fixed, err := payment.NewFixed(clk, map[string]int64{"USD": 5_000_000})
		require.NoError(t, err)
		var source payment.RateSource = payment.NewCached(fixed, clk, time.Minute)
		rate, err := source.Rate(t.Context(), "USD")
		require.NoError(t, err)
		require.Equal(t, "fixed", rate.Source)
	})
}
