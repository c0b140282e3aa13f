package payment

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/tessera/tessera/internal/clock"
)

// ErrNoRate means a rate source has no rate for the currency asked for.
var ErrNoRate = errors.New("payment: no rate for this currency")

// Fixed is a RateSource answering configured rates, for development and tests. Its rates have
// Source "fixed" and are stamped with its clock's reading. It is safe for concurrent use.
type Fixed struct {
	rates map[string]int64
	clock clock.Clock
}

// NewFixed returns a Fixed source of rates: currency code ("USD") → minor units per BTC
// (5000000 for $50,000.00). Every rate must be positive; clock is required.
func NewFixed(clk clock.Clock, rates map[string]int64) (*Fixed, error) {
	if clk == nil {
		return nil, errors.New("payment: fixed rates: clock is required")
	}
	f := &Fixed{rates: make(map[string]int64, len(rates)), clock: clk}
	for currency, minor := range rates {
		if len(currency) != 3 || strings.ToUpper(currency) != currency {
			return nil, fmt.Errorf("payment: fixed rates: currency %q is not an upper-case ISO code", currency)
		}
		if minor <= 0 {
			return nil, fmt.Errorf("payment: fixed rates: %s rate %d is not positive", currency, minor)
		}
		f.rates[currency] = minor
	}
	return f, nil
}

// Rate returns the configured rate of currency (case-insensitive), or ErrNoRate.
func (f *Fixed) Rate(_ context.Context, currency string) (Rate, error) {
	currency = strings.ToUpper(currency)
	minor, ok := f.rates[currency]
	if !ok {
		return Rate{}, fmt.Errorf("fixed rate %s: %w", currency, ErrNoRate)
	}
	return Rate{Currency: currency, MinorPerBTC: minor, Source: "fixed", FetchedAt: f.clock.Now()}, nil
}

// Cached is a RateSource that remembers another source's rates per currency for a maximum
// age. Concurrent callers asking for the same currency share one fetch; errors are not
// remembered, so the next call asks the source again. It is safe for concurrent use.
type Cached struct {
	source RateSource
	clock  clock.Clock
	maxAge time.Duration

	mu      sync.Mutex
	entries map[string]*cacheEntry
}

// cacheEntry is one currency's cached rate. sem (capacity 1) is held while fetching.
type cacheEntry struct {
	sem       chan struct{}
	rate      Rate
	fetchedAt time.Time
	ok        bool
}

// NewCached returns a Cached source in front of source, whose rates are fetched again once
// they are maxAge old by clock's reading (measured from when Cached fetched them). It panics
// when source or clock is nil or maxAge is not positive: those are programming errors.
func NewCached(source RateSource, clk clock.Clock, maxAge time.Duration) *Cached {
	switch {
	case source == nil:
		panic("payment: NewCached: source is nil")
	case clk == nil:
		panic("payment: NewCached: clock is nil")
	case maxAge <= 0:
		panic("payment: NewCached: maxAge is not positive")
	}
	return &Cached{source: source, clock: clk, maxAge: maxAge, entries: map[string]*cacheEntry{}}
}

// Rate returns the cached rate of currency while it is younger than the maximum age,
// otherwise fetches it from the source. The returned Rate is the source's (its Source and
// FetchedAt tell where and when it was fetched).
func (c *Cached) Rate(ctx context.Context, currency string) (Rate, error) {
	currency = strings.ToUpper(currency)
	c.mu.Lock()
	e, ok := c.entries[currency]
	if !ok {
		e = &cacheEntry{sem: make(chan struct{}, 1)}
		c.entries[currency] = e
	}
	c.mu.Unlock()

	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		return Rate{}, fmt.Errorf("rate %s: wait for a fetch in progress: %w", currency, ctx.Err())
	}
	defer func() { <-e.sem }()
	now := c.clock.Now()
	if e.ok && now.Sub(e.fetchedAt) < c.maxAge {
		return e.rate, nil
	}
	rate, err := c.source.Rate(ctx, currency)
	if err != nil {
		return Rate{}, fmt.Errorf("rate %s: %w", currency, err)
	}
	e.rate, e.fetchedAt, e.ok = rate, now, true
	return rate, nil
}
