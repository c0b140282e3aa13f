package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/replica"
)

// startReads opens the read replica's pool when TESSERA_READ_DATABASE_URL is set and starts
// the monitor that routes reads to it (replica.Router), reporting on sv's metrics and log. It
// returns nil without a replica. stop ends the monitor and closes the pool. A replica that
// is down at start is no error: reads go to the primary until it answers.
func startReads(ctx context.Context, cfg Config, sv services) (reads api.Reader, stop func(), err error) {
	if cfg.ReadDatabaseURL == "" {
		return nil, func() {}, nil
	}
	pc, err := cfg.poolConfigOf("TESSERA_READ_DATABASE_URL", cfg.ReadDatabaseURL)
	if err != nil {
		return nil, nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, nil, fmt.Errorf("TESSERA_READ_DATABASE_URL: %w", err)
	}
	router, err := replica.New(replica.Config{
		Primary: sv.pool, Replica: pool, MaxLag: cfg.ReadMaxLag, Clock: sv.clock, Log: sv.log, Metrics: sv.obs.registry,
	})
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	monitorCtx, cancel := context.WithCancel(context.WithoutCancel(ctx)) // stopped after HTTP has drained
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		router.Run(monitorCtx)
	}()
	sv.log.InfoContext(ctx, "read replica configured: read-only operations go to it while it lags by at most TESSERA_READ_MAX_LAG",
		"max_lag", cfg.ReadMaxLag)
	return router, func() {
		cancel()
		wg.Wait()
		pool.Close()
	}, nil
}
