package jobs

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestSchedule pins the periodic schedule (River UI and the operator docs name its kinds),
// and requires that every sweep has a registered worker and a place in it.
func TestSchedule(t *testing.T) {
	t.Parallel()
	rc, err := RevocationConfig{Interval: 2 * time.Minute}.withDefaults()
	require.NoError(t, err)
	got := map[string]time.Duration{}
	for _, p := range schedule(rc) {
		got[p.args.Kind()] = p.interval
	}
	require.Equal(t, map[string]time.Duration{
		"idempotency.expire_sweep": time.Hour,
		"event.retention_sweep":    time.Hour,
		"webhook.deliver_sweep":    10 * time.Second,
		"license.expire_sweep":     time.Minute,
		"payin.reconcile_sweep":    5 * time.Minute,
		"referral.recompute_sweep": time.Hour,
		"subscription.renew_sweep": time.Minute,
		"subscription.lapse_sweep": time.Minute,
		"revocation.check":         2 * time.Minute,
	}, got)

	r, err := register(Config{})
	require.NoError(t, err)
	registered := map[string]bool{}
	for _, args := range r.args {
		registered[args.Kind()] = true
		if strings.HasSuffix(args.Kind(), "_sweep") {
			require.Contains(t, got, args.Kind(), "a sweep runs on the schedule")
		}
	}
	for kind := range got {
		require.True(t, registered[kind], "%s has a worker", kind)
	}
}

// TestPeriodicJobsRefusesABadRevocationInterval: revocation.check's interval is validated
// with the rest of its configuration.
func TestPeriodicJobsRefusesABadRevocationInterval(t *testing.T) {
	t.Parallel()
	_, err := PeriodicJobs(Config{Revocation: RevocationConfig{Interval: -time.Second}})
	require.EqualError(t, err, "jobs: Config.Revocation durations and PerFiring must be positive")
}
