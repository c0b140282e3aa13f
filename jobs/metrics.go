package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tessera/tessera/sql"
)

// jobCountsQuery counts River's jobs by kind and state, across all tenants. It is written
// here rather than in queries/ because River's tables come from rivermigrate and are not in
// the schema sqlc reads. It scans river_job; scrapes are infrequent and bounded by a timeout.
const jobCountsQuery = `SELECT kind, state::text, count(*) FROM river_job GROUP BY kind, state`

// JobCountCollector exports River's job counts by kind and state as the gauge
// tessera_river_jobs, read from the database at each scrape.
type JobCountCollector struct {
	db      sql.DBTX
	log     *slog.Logger
	desc    *prometheus.Desc
	timeout time.Duration
}

// NewJobCountCollector returns a collector reading from db; a scrape that cannot read the
// counts within five seconds reports none and logs why.
func NewJobCountCollector(db sql.DBTX, log *slog.Logger) *JobCountCollector {
	return &JobCountCollector{
		db:      db,
		log:     log,
		desc:    prometheus.NewDesc("tessera_river_jobs", "River jobs by kind and state.", []string{"kind", "state"}, nil),
		timeout: 5 * time.Second,
	}
}

// Describe sends the collector's one metric description.
func (c *JobCountCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

// Collect reads the counts.
func (c *JobCountCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	rows, err := c.db.Query(ctx, jobCountsQuery)
	if err != nil {
		c.log.WarnContext(ctx, "count river jobs", "error", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var kind, state string
		var count int64
		if err := rows.Scan(&kind, &state, &count); err != nil {
			c.log.WarnContext(ctx, "count river jobs", "error", err)
			return
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(count), kind, state)
	}
	if err := rows.Err(); err != nil {
		c.log.WarnContext(ctx, "count river jobs", "error", err)
	}
}
