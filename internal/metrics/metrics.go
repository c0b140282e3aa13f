// Package metrics holds the Prometheus metrics that both the API and the jobs record — the
// domain outcome counters of renewals and PayIns, counted once the transaction that brought
// them about has committed — and the bucket boundaries of Tessera's histograms.
package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tessera/tessera/internal/core"
)

// HTTPDurationBuckets are the bucket boundaries, in seconds, of the HTTP latency histogram:
// 100 µs to 10 s in steps of 1, 2.5 and 5 per power of ten, so that a licence validation,
// which takes about a millisecond, is resolved to within a factor of 2.5.
var HTTPDurationBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// JobDurationBuckets are the bucket boundaries, in seconds, of the job duration histogram:
// 1 ms to 100 s in steps of 1, 2.5 and 5 per power of ten, up to the longest job timeouts.
var JobDurationBuckets = []float64{
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100,
}

// Domain counts domain outcomes: tessera_renewals_total{outcome} and
// tessera_payins_total{type,outcome,reason}.
type Domain struct {
	renewals *prometheus.CounterVec
	payins   *prometheus.CounterVec
}

// NewDomain registers the domain outcome counters with reg.
func NewDomain(reg prometheus.Registerer) (*Domain, error) {
	d := &Domain{
		renewals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_renewals_total",
			Help: "Subscription renewals by outcome: started (cycle opened with its PayIn), paid, failed (not charged, backed off), stuck (failed at the failure cap), lapsed.",
		}, []string{"outcome"}),
		payins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_payins_total",
			Help: "PayIns by type and outcome (paid, failed, late_payment_credited), with the failure reason (as the API spells it, e.g. INVOICE_EXPIRED) of failed ones.",
		}, []string{"type", "outcome", "reason"}),
	}
	for _, c := range []prometheus.Collector{d.renewals, d.payins} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register domain metrics: %w", err)
		}
	}
	return d, nil
}

// Count adds the outcomes of a committed transaction. Call it only after the commit.
func (d *Domain) Count(o *core.Outcomes) {
	for _, r := range o.Renewals {
		d.renewals.WithLabelValues(string(r)).Inc()
	}
	for _, p := range o.PayIns {
		d.payins.WithLabelValues(string(p.Type), string(p.Outcome), string(p.Reason)).Inc()
	}
}
