package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// The configuration tests set environment variables, so none of them is parallel.

// configCase is one environment and what loadConfig makes of it: want, or an error that
// contains wantErr.
type configCase[T any] struct {
	name    string
	env     map[string]string
	want    T
	wantErr string
}

// testConfig runs each case as a subtest: it sets the case's environment, loads the
// configuration, and requires the case's error, or got's value of the configuration.
func testConfig[T any](t *testing.T, cases []configCase[T], got func(Config) (T, error)) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			cfg, err := loadConfig()
			var value T
			if err == nil {
				value, err = got(cfg)
			}
			if tt.wantErr != "" {
				require.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, value)
		})
	}
}

//nolint:paralleltest // sets the environment (testConfig)
func TestConfigRescueStuckJobsAfter(t *testing.T) {
	testConfig(t, []configCase[time.Duration]{
		// The longest default timeout is revocation.check's: 1 × (10 s + 5 s) + 1 m.
		{name: "DefaultIsTheLongestTimeoutPlusAMargin", want: 2*time.Minute + 20*time.Second},
		{name: "Set", env: map[string]string{"TESSERA_RESCUE_STUCK_JOBS_AFTER": "10m"}, want: 10 * time.Minute},
		{
			name: "ShortTimeoutsGiveAShortDefault",
			env:  map[string]string{"TESSERA_JOB_TIMEOUT": "2s", "TESSERA_WEBHOOK_TIMEOUT": "1s", "TESSERA_REVOCATION_TIMEOUT": "1s"},
			want: time.Minute + 8*time.Second,
		},
		{
			name: "SetJustAboveTheLongestTimeout",
			env: map[string]string{"TESSERA_JOB_TIMEOUT": "2s", "TESSERA_WEBHOOK_TIMEOUT": "1s", "TESSERA_REVOCATION_TIMEOUT": "1s",
				"TESSERA_RESCUE_STUCK_JOBS_AFTER": "9s"},
			want: 9 * time.Second,
		},
		{
			name:    "NotAboveTheLongestTimeout",
			env:     map[string]string{"TESSERA_RESCUE_STUCK_JOBS_AFTER": "80s"},
			wantErr: "TESSERA_RESCUE_STUCK_JOBS_AFTER (1m20s) must be above the longest job timeout (1m20s,",
		},
		{
			name:    "LongerWebhookTimeoutRaisesTheBound",
			env:     map[string]string{"TESSERA_WEBHOOK_TIMEOUT": "5m", "TESSERA_RESCUE_STUCK_JOBS_AFTER": "10m"},
			wantErr: "TESSERA_RESCUE_STUCK_JOBS_AFTER (10m0s) must be above the longest job timeout (11m0s,",
		},
		{
			name:    "MoreChecksPerFiringRaiseTheBound",
			env:     map[string]string{"TESSERA_REVOCATION_PER_FIRING": "10", "TESSERA_RESCUE_STUCK_JOBS_AFTER": "3m"},
			wantErr: "TESSERA_RESCUE_STUCK_JOBS_AFTER (3m0s) must be above the longest job timeout (3m30s,",
		},
		{name: "NegativeJobTimeout", env: map[string]string{"TESSERA_JOB_TIMEOUT": "-1s"}, wantErr: "TESSERA_JOB_TIMEOUT must be positive"},
		{name: "NegativeBound", env: map[string]string{"TESSERA_RESCUE_STUCK_JOBS_AFTER": "-1s"}, wantErr: "TESSERA_RESCUE_STUCK_JOBS_AFTER must be positive"},
	}, Config.rescueStuckJobsAfter)
}

func TestConfigMetricsAddr(t *testing.T) {
	//nolint:paralleltest // reads the environment, which its sibling sets with t.Setenv
	t.Run("Default", func(t *testing.T) {
		cfg, err := loadConfig()
		require.NoError(t, err)
		require.Equal(t, ":9091", cfg.MetricsAddr)
		require.Equal(t, ":8080", cfg.Addr, "serve keeps its metrics on the API's address")
	})
	t.Run("Set", func(t *testing.T) {
		t.Setenv("TESSERA_METRICS_ADDR", "127.0.0.1:9100")
		cfg, err := loadConfig()
		require.NoError(t, err)
		require.Equal(t, "127.0.0.1:9100", cfg.MetricsAddr)
	})
}

//nolint:paralleltest // sets the environment (testConfig)
func TestConfigOperator(t *testing.T) {
	testConfig(t, []configCase[string]{
		{name: "DefaultUser", want: "operator"},
		{name: "EmptyUserIsTheDefault", env: map[string]string{"TESSERA_OPERATOR_USER": ""}, want: "operator"},
		{name: "User", env: map[string]string{"TESSERA_OPERATOR_USER": "ops", "TESSERA_OPERATOR_PASSWORD": "0123456789abcdef"}, want: "ops"},
		{name: "ShortPassword", env: map[string]string{"TESSERA_OPERATOR_PASSWORD": "0123456789abcde"}, wantErr: "TESSERA_OPERATOR_PASSWORD must be at least 16 characters"},
		{name: "UserWithColon", env: map[string]string{"TESSERA_OPERATOR_USER": "a:b"}, wantErr: `TESSERA_OPERATOR_USER must not contain a colon or line break, not "a:b"`},
	}, func(cfg Config) (string, error) { return cfg.OperatorUser, nil })
}

//nolint:paralleltest // sets the environment (testConfig)
func TestConfigPprofAddr(t *testing.T) {
	var cases []configCase[string]
	for _, tt := range []struct{ addr, wantErr string }{
		{addr: ""},
		{addr: "127.0.0.1:6060"},
		{addr: "[::1]:6060"},
		{addr: "localhost:6060"},
		{addr: ":6060", wantErr: `TESSERA_PPROF_ADDR must be a loopback address (127.0.0.1:6060), not ":6060"`},
		{addr: "0.0.0.0:6060", wantErr: "TESSERA_PPROF_ADDR must be a loopback address"},
		{addr: "10.0.0.1:6060", wantErr: "TESSERA_PPROF_ADDR must be a loopback address"},
		{addr: "127.0.0.1", wantErr: "TESSERA_PPROF_ADDR must be a loopback address"},
	} {
		cases = append(cases, configCase[string]{name: tt.addr, env: map[string]string{"TESSERA_PPROF_ADDR": tt.addr}, want: tt.addr, wantErr: tt.wantErr})
	}
	testConfig(t, cases, func(cfg Config) (string, error) { return cfg.PprofAddr, nil })
}

// With TESSERA_PPROF_ADDR set, a process serves its runtime profiles there until stopped.
func TestServePprof(t *testing.T) {
	t.Parallel()
	addr, stop, err := servePprof(Config{PprofAddr: "127.0.0.1:0"}, slog.New(slog.DiscardHandler))
	require.NoError(t, err)
	resp, err := http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Contains(t, string(body), "goroutine profile:")

	stop()
	_, err = net.Dial("tcp", addr)
	require.Error(t, err, "stopped")
}

// readReplica is what the configuration says of a read replica.
type readReplica struct {
	url    string
	maxLag time.Duration
}

//nolint:paralleltest // sets the environment (testConfig)
func TestConfigReadReplica(t *testing.T) {
	testConfig(t, []configCase[readReplica]{
		{name: "Default", want: readReplica{maxLag: time.Second}},
		{
			name: "Set", env: map[string]string{"TESSERA_READ_DATABASE_URL": "postgres://replica/tessera", "TESSERA_READ_MAX_LAG": "5s"},
			want: readReplica{url: "postgres://replica/tessera", maxLag: 5 * time.Second},
		},
		{name: "BoundNotAboveTheCheckInterval", env: map[string]string{"TESSERA_READ_MAX_LAG": "250ms"}, wantErr: "TESSERA_READ_MAX_LAG must be above 250ms, the lag check's interval, not 250ms"},
	}, func(cfg Config) (readReplica, error) {
		return readReplica{url: cfg.ReadDatabaseURL, maxLag: cfg.ReadMaxLag}, nil
	})
}

//nolint:paralleltest // sets the environment (testConfig)
func TestConfigDBPooler(t *testing.T) {
	const url = "postgres://tessera@127.0.0.1:6432/tessera"
	env := func(pooler, url string) map[string]string {
		return map[string]string{"TESSERA_DB_POOLER": pooler, "DATABASE_URL": url}
	}
	testConfig(t, []configCase[pgx.QueryExecMode]{
		{name: "DefaultKeepsPgxDefault", env: env("", url), want: pgx.QueryExecModeCacheStatement},
		{name: "NoneKeepsTheURLMode", env: env("none", url+"?default_query_exec_mode=describe_exec"), want: pgx.QueryExecModeDescribeExec},
		{name: "TransactionDescribesOnce", env: env("transaction", url), want: pgx.QueryExecModeCacheDescribe},
		{name: "TransactionReplacesNamedStatements", env: env("transaction", url+"?default_query_exec_mode=cache_statement"), want: pgx.QueryExecModeCacheDescribe},
		{name: "TransactionReplacesTwoRoundTrips", env: env("transaction", url+"?default_query_exec_mode=describe_exec"), want: pgx.QueryExecModeCacheDescribe},
		{name: "TransactionKeepsCacheDescribe", env: env("transaction", url+"?default_query_exec_mode=cache_describe"), want: pgx.QueryExecModeCacheDescribe},
		{name: "ExecRefused", env: env("transaction", url+"?default_query_exec_mode=exec"), wantErr: "default_query_exec_mode=exec sends jsonb parameters as bytea"},
		{name: "SimpleProtocolRefused", env: env("", url+"?default_query_exec_mode=simple_protocol"), wantErr: "default_query_exec_mode=simple_protocol sends jsonb parameters as bytea"},
		{name: "UnknownPooler", env: env("pgbouncer", url), wantErr: `TESSERA_DB_POOLER must be none or transaction, not "pgbouncer"`},
	}, func(cfg Config) (pgx.QueryExecMode, error) {
		pc, err := cfg.poolConfig()
		if err != nil {
			return 0, err
		}
		return pc.ConnConfig.DefaultQueryExecMode, nil
	})
}

//nolint:paralleltest // sets the environment (testConfig)
func TestConfigFetchCooldown(t *testing.T) {
	testConfig(t, []configCase[time.Duration]{
		{name: "Default", want: 5 * time.Millisecond},
		{name: "Set", env: map[string]string{"TESSERA_FETCH_COOLDOWN": "50ms"}, want: 50 * time.Millisecond},
		{name: "TooShort", env: map[string]string{"TESSERA_FETCH_COOLDOWN": "100us"}, wantErr: "TESSERA_FETCH_COOLDOWN must be between 1ms and 1s, not 100µs"},
		{name: "TooLong", env: map[string]string{"TESSERA_FETCH_COOLDOWN": "2s"}, wantErr: "TESSERA_FETCH_COOLDOWN must be between 1ms and 1s, not 2s"},
	}, func(cfg Config) (time.Duration, error) { return cfg.FetchCooldown, nil })
}

//nolint:paralleltest // sets the environment (testConfig)
func TestConfigWorkersWhileValidating(t *testing.T) {
	testConfig(t, []configCase[int]{
		{name: "Default", want: 2},
		{name: "Set", env: map[string]string{"TESSERA_WORKERS_WHILE_VALIDATING": "10"}, want: 10},
		{name: "Zero", env: map[string]string{"TESSERA_WORKERS_WHILE_VALIDATING": "0"}, wantErr: "TESSERA_WORKERS_WHILE_VALIDATING must be at least 1, not 0"},
	}, func(cfg Config) (int, error) { return cfg.WorkersWhileValidating, nil })
}
