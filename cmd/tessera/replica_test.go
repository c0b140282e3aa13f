package main

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/testdb"
	"github.com/tessera/tessera/sql"
)

// TestServeReadReplica runs two serve processes on a primary and its streaming replica
// (TESSERA_READ_DATABASE_URL) and validates licences on them over loopback HTTP while the
// replica lags and dies: fresh has a 400 ms bound, stale a minute's, so a client of stale sees
// what a replica within its bound may answer.
//
//nolint:paralleltest,tparallel // the subtests run in order on one replica, which they pause and kill
func TestServeReadReplica(t *testing.T) {
	t.Parallel()
	pair := testdb.Replicated(t)
	pool := connect(t, pair.PrimaryURL)
	const maxLag = 400 * time.Millisecond
	withReplica := func(bound time.Duration) func(*Config) {
		return func(c *Config) {
			c.ReadDatabaseURL, c.ReadMaxLag = pair.ReplicaURL, bound
			c.ValidatePerKey, c.ValidateKeyBurst, c.ValidatePerClient, c.ValidateClientBurst = 1e6, 1e6, 1e6, 1e6
		}
	}
	fresh := startServerOn(t, pool, pair.PrimaryURL, withReplica(maxLag))
	stale := startServerOn(t, pool, pair.PrimaryURL, withReplica(time.Minute))
	policy := factory.Policy(t, pool, fresh.tenant.ID)
	issue := func() sql.License {
		return factory.License(t, pool, fresh.tenant.ID, policy.ID, factory.Customer(t, pool, fresh.tenant.ID).ID)
	}
	revoked, issued := issue(), sql.License{}
	pair.CatchUp(t)
	usable := func(s *server, want float64) {
		t.Helper()
		await(t, "tessera_read_replica_usable to become "+strconv.FormatFloat(want, 'g', -1, 64), func() bool {
			return s.metric(t, "tessera_read_replica_usable") == want
		})
	}

	// onReplica waits until a validation of key (of a VALID licence) on s is answered by the
	// replica.
	onReplica := func(s *server, key string) {
		t.Helper()
		await(t, "a validation answered by the replica", func() bool {
			before := s.metric(t, `tessera_reads_total{route="replica"}`)
			return s.validate(t, key) == "VALID" && s.metric(t, `tessera_reads_total{route="replica"}`) > before
		})
	}

	t.Run("ValidatedOnReplica", func(t *testing.T) {
		usable(stale, 1)
		require.Equal(t, "VALID", stale.validate(t, revoked.Key))
		require.Equal(t, 1.0, stale.metric(t, `tessera_reads_total{route="replica"}`))
		require.Equal(t, 0.0, stale.metric(t, `tessera_reads_total{route="primary"}`))
		// fresh's 400 ms bound holds only while checks come in time: a loaded machine may delay one.
		onReplica(fresh, revoked.Key)
	})

	t.Run("IssuedLicenceValidAtOnce", func(t *testing.T) {
		pair.PauseReplay(t)
		issued = issue()
		// The paused replica has no such licence: the primary confirms the NOT_FOUND away.
		require.Equal(t, "VALID", stale.validate(t, issued.Key))
		require.Equal(t, 1.0, stale.metric(t, `tessera_reads_total{route="confirmed"}`))
	})

	t.Run("RevokedSeenBeyondBound", func(t *testing.T) {
		res, err := fresh.post("/v1/admin/licenses/"+revoked.ID.String()+"/revoke", "")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.status, res.body)
		committed := (clock.System{}).Now()
		// Within its minute's bound, stale answers from the paused replica: still VALID.
		require.Equal(t, "VALID", stale.validate(t, revoked.Key))
		// fresh answers REVOKED to every validation sent more than its bound after the revocation.
		for (clock.System{}).Now().Sub(committed) < 3*maxLag {
			sent := (clock.System{}).Now()
			code := fresh.validate(t, revoked.Key)
			if sent.Sub(committed) > maxLag {
				require.Equal(t, "REVOKED", code, "validated %s after the revocation", sent.Sub(committed))
			}
			time.Sleep(10 * time.Millisecond)
		}
		require.Equal(t, 0.0, fresh.metric(t, "tessera_read_replica_usable"))
		require.Greater(t, fresh.metric(t, "tessera_read_replica_lag_seconds"), maxLag.Seconds())
		require.Positive(t, fresh.metric(t, `tessera_reads_total{route="primary"}`))

		pair.ResumeReplay(t)
		usable(fresh, 1)
		require.Equal(t, "REVOKED", stale.validate(t, revoked.Key))
	})

	t.Run("ReplicaKilled", func(t *testing.T) {
		pair.Kill(t)
		// Every validation answers 200 from the primary, on both servers, as they find out.
		for deadline := (clock.System{}).Now().Add(2 * time.Second); (clock.System{}).Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			for _, s := range []*server{fresh, stale} {
				require.Equal(t, "REVOKED", s.validate(t, revoked.Key))
				require.Equal(t, "VALID", s.validate(t, issued.Key))
			}
		}
		usable(fresh, 0)
		usable(stale, 0)
	})

	t.Run("ReplicaBack", func(t *testing.T) {
		pair.Start(t)
		onReplica(fresh, issued.Key)
	})
}

// await polls cond, in the test's goroutine (cond may fail the test), until it holds; it fails
// the test after waitFor.
func await(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := (clock.System{}).Now().Add(waitFor); !cond(); time.Sleep(10 * time.Millisecond) {
		require.True(t, (clock.System{}).Now().Before(deadline), "waited %s for %s", waitFor, what)
	}
}

// validate validates key on s and returns the verdict's code; any answer but 200 fails the
// test.
func (s *server) validate(t *testing.T, key string) string {
	t.Helper()
	body, err := json.Marshal(map[string]string{"key": key})
	require.NoError(t, err)
	res, err := s.post("/v1/licenses/validate", string(body))
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.status, res.body)
	var verdict struct{ Code string }
	require.NoError(t, json.Unmarshal([]byte(res.body), &verdict))
	return verdict.Code
}

// post sends POST path with body (JSON) and the server's key.
func (s *server) post(path, body string) (response, error) {
	req, err := http.NewRequest(http.MethodPost, "http://"+s.addr+path, strings.NewReader(body))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Authorization", "Bearer "+s.key)
	req.Header.Set("Content-Type", "application/json")
	return s.send(req)
}

// metric is the value of the series (a name with its labels, as /metrics prints it) on s's
// /metrics.
func (s *server) metric(t *testing.T, series string) float64 {
	t.Helper()
	res, err := s.get("/metrics")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, res.status)
	for line := range strings.Lines(res.body) {
		if value, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			v, err := strconv.ParseFloat(value, 64)
			require.NoError(t, err)
			return v
		}
	}
	require.FailNow(t, "no such series on /metrics", series)
	return 0
}
