package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"

	"github.com/tessera/tessera/internal/btcpay"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/replica"
	"github.com/tessera/tessera/internal/secrets"
	"github.com/tessera/tessera/jobs"
)

// Config is Tessera's configuration, read from the environment. The README's configuration
// table lists the same variables and defaults.
type Config struct {
	// DatabaseURL is the Postgres connection string. Required by every command but openapi;
	// make run and make test point it at the embedded default database.
	DatabaseURL string `env:"DATABASE_URL"`
	// ReadDatabaseURL is a streaming replica (hot standby) of DatabaseURL that serve sends
	// its read-only operations to while it lags by at most ReadMaxLag: licence validation,
	// PayIn polling and tenants' public keys (the README's "Read replica"). Default none:
	// everything reads DatabaseURL.
	ReadDatabaseURL string `env:"TESSERA_READ_DATABASE_URL"`
	// ReadMaxLag is the read replica's staleness bound: reads go to it only while it holds
	// every transaction committed on the primary more than ReadMaxLag ago. It must be above
	// the lag check's interval (250ms). Default 1s.
	ReadMaxLag time.Duration `env:"TESSERA_READ_MAX_LAG" envDefault:"1s"`
	// SecretKey is the base64 of 32 random bytes that seals tenants' signing keys and webhook
	// secrets at rest (`openssl rand -base64 32`). Required by commands that create tenants
	// or sign; make run keeps one in .tessera/secret-key. Losing it makes sealed secrets
	// unreadable.
	SecretKey string `env:"TESSERA_SECRET_KEY"`
	// Addr is where serve listens: the API, with /metrics among its routes. Default :8080.
	Addr string `env:"TESSERA_ADDR" envDefault:":8080"`
	// MetricsAddr is where worker serves /metrics and /healthz (serve keeps them on Addr).
	// Default :9091.
	MetricsAddr string `env:"TESSERA_METRICS_ADDR" envDefault:":9091"`
	// PprofAddr, when set, is a loopback address (127.0.0.1:6060) where serve and worker
	// serve Go's runtime profiles (net/http/pprof under /debug/pprof/). Empty: off, the
	// default; any other host is refused, as the profiles show the process's internals.
	PprofAddr string `env:"TESSERA_PPROF_ADDR"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `env:"TESSERA_LOG_LEVEL" envDefault:"info"`
	// LogFormat is text or json. Default text.
	LogFormat string `env:"TESSERA_LOG_FORMAT" envDefault:"text"`
	// Workers is how many River jobs one process works at once. Default 10.
	Workers int `env:"TESSERA_WORKERS" envDefault:"10"`
	// WorkersWhileValidating is how many of those jobs serve works at once while it is
	// answering licence validations, which go first (internal/priority): a payment run or a
	// renewal batch then slows down rather than the validations' latency going up. A job held
	// back starts anyway after a second; webhook deliveries are not held back.
	// TESSERA_WORKERS or more: no priority. Default 2.
	WorkersWhileValidating int `env:"TESSERA_WORKERS_WHILE_VALIDATING" envDefault:"2"`
	// FetchCooldown is the least time between two fetches of available jobs by one queue of
	// one process (River's FetchCooldown): a queue starts at most Workers jobs per cooldown,
	// so River's 100ms default caps 10 workers at 100 jobs/s. Each fetch is one query, run
	// only while jobs are being inserted or finished. Default 5ms.
	FetchCooldown time.Duration `env:"TESSERA_FETCH_COOLDOWN" envDefault:"5ms"`
	// WebhookWorkers is how many webhook endpoints one process sends to at once (one
	// webhook.deliver job per endpoint), on their own queue so that slow endpoints never hold
	// up other jobs. Keep it above WebhookMaxEndpoints: one tenant's hanging endpoints then
	// cannot take every worker. Default 50.
	WebhookWorkers int `env:"TESSERA_WEBHOOK_WORKERS" envDefault:"50"`
	// WebhookMaxEndpoints is how many webhook endpoints a tenant may have, enabled or not.
	// Default 20.
	WebhookMaxEndpoints int `env:"TESSERA_WEBHOOK_MAX_ENDPOINTS" envDefault:"20"`
	// WebhookTimeout bounds one webhook delivery attempt. Default 10s.
	WebhookTimeout time.Duration `env:"TESSERA_WEBHOOK_TIMEOUT" envDefault:"10s"`
	// AllowPrivateNetworks lets webhook deliveries and upstream store checks, whose URLs
	// tenants choose, reach loopback, private and link-local addresses. Default false (no
	// server-side request forgery); make run turns it on for local receivers and fakes.
	AllowPrivateNetworks bool `env:"TESSERA_ALLOW_PRIVATE_NETWORKS" envDefault:"false"`
	// EventRetention is how long events and their finished webhook deliveries are kept.
	// Default 720h (30 days).
	EventRetention time.Duration `env:"TESSERA_EVENT_RETENTION" envDefault:"720h"`
	// JobTimeout bounds one attempt of every job's own work, in Postgres and at the payment
	// provider; webhook deliveries and revocation checks add their request's timeout
	// (WebhookTimeout, RevocationTimeout). Default 1m.
	JobTimeout time.Duration `env:"TESSERA_JOB_TIMEOUT" envDefault:"1m"`
	// RescueStuckJobsAfter is how long a job may stay running before River's rescuer takes it
	// for orphaned (its process died or lost its database connection) and retries it, or
	// discards it after its last attempt. It must be above the longest job timeout
	// (jobs.LongestTimeout: 75s with the defaults), so that no job is run twice at once.
	// Default: the longest job timeout plus rescueMargin (2m20s with the defaults).
	RescueStuckJobsAfter time.Duration `env:"TESSERA_RESCUE_STUCK_JOBS_AFTER"`
	// DBMaxConns is the size of the connection pool. Default 20.
	DBMaxConns int32 `env:"TESSERA_DB_MAX_CONNS" envDefault:"20"`
	// DBPooler is what DATABASE_URL reaches: none (Postgres itself, or a pooler in session
	// mode), or transaction, a pooler that hands each transaction any of its server
	// connections (PgBouncer's pool_mode = transaction). Behind transaction pooling, queries
	// use unnamed statements (pgx's cache_describe mode, see queryExecMode), River polls for jobs
	// instead of listening (PollOnly), and migrate refuses to run: its session advisory locks
	// need a direct connection. Default none.
	DBPooler string `env:"TESSERA_DB_POOLER" envDefault:"none"`
	// ShutdownTimeout bounds each stage of a graceful shutdown: draining HTTP requests, then
	// letting running jobs finish before they are cancelled. Default 30s.
	ShutdownTimeout time.Duration `env:"TESSERA_SHUTDOWN_TIMEOUT" envDefault:"30s"`
	// ValidatePerKey and ValidateKeyBurst limit licence validations per licence key, per
	// process: on average per second, and at once. Defaults 5 and 20.
	ValidatePerKey   float64 `env:"TESSERA_VALIDATE_PER_KEY" envDefault:"5"`
	ValidateKeyBurst int     `env:"TESSERA_VALIDATE_KEY_BURST" envDefault:"20"`
	// ValidatePerClient and ValidateClientBurst limit licence validations per client
	// address, per process. Defaults 50 and 100.
	ValidatePerClient   float64 `env:"TESSERA_VALIDATE_PER_CLIENT" envDefault:"50"`
	ValidateClientBurst int     `env:"TESSERA_VALIDATE_CLIENT_BURST" envDefault:"100"`
	// BTCPayURL, BTCPayStoreID, BTCPayAPIKey and BTCPayWebhookSecret reach the BTCPay
	// Server store that invoices buyers: its address, store id, a Greenfield API key with
	// invoice and rate permissions, and the secret of the store's webhook pointing at
	// /v1/providers/btcpay/webhook. Required by serve and worker; make run points them at
	// `tessera fake-btcpay`.
	BTCPayURL           string `env:"TESSERA_BTCPAY_URL"`
	BTCPayStoreID       string `env:"TESSERA_BTCPAY_STORE_ID"`
	BTCPayAPIKey        string `env:"TESSERA_BTCPAY_API_KEY"`
	BTCPayWebhookSecret string `env:"TESSERA_BTCPAY_WEBHOOK_SECRET"`
	// OperatorUser and OperatorPassword sign an operator in to River UI, which serve mounts
	// at /riverui/ (HTTP basic auth, realm "Tessera operators"). Without a password River UI
	// is not mounted. The password must be at least operatorPasswordMin characters
	// (`openssl rand -base64 24`); make run keeps one in .tessera/operator-password. Default
	// user operator, no password.
	OperatorUser     string `env:"TESSERA_OPERATOR_USER" envDefault:"operator"`
	OperatorPassword string `env:"TESSERA_OPERATOR_PASSWORD"`
	// RateMaxAge is how long a fetched exchange rate is used before it is fetched again.
	// Default 1m.
	RateMaxAge time.Duration `env:"TESSERA_RATE_MAX_AGE" envDefault:"1m"`
	// IdempotencyTTL is how long a response stored under an Idempotency-Key is replayed.
	// Default 24h.
	IdempotencyTTL time.Duration `env:"TESSERA_IDEMPOTENCY_TTL" envDefault:"24h"`
	// RevocationInterval is the global rate limit of upstream revocation checks: one firing
	// per interval across all processes. Default 60s.
	RevocationInterval time.Duration `env:"TESSERA_REVOCATION_INTERVAL" envDefault:"60s"`
	// RevocationPerFiring is how many upstream requests one firing makes at most. Default 1.
	RevocationPerFiring int `env:"TESSERA_REVOCATION_PER_FIRING" envDefault:"1"`
	// RevocationMinInterval is the least time between two checks of a licence. Default 15m.
	RevocationMinInterval time.Duration `env:"TESSERA_REVOCATION_MIN_INTERVAL" envDefault:"15m"`
	// RevocationErrorBackoff holds a licence back after a failed check. Default 5m.
	RevocationErrorBackoff time.Duration `env:"TESSERA_REVOCATION_ERROR_BACKOFF" envDefault:"5m"`
	// RevocationTimeout bounds one upstream request. Default 10s.
	RevocationTimeout time.Duration `env:"TESSERA_REVOCATION_TIMEOUT" envDefault:"10s"`
	// RevocationWeight* weigh the revocation risk score's terms (see queries/revocation.sql).
	// Defaults 10, 10, 2, 1, 1 and 1.
	RevocationWeightRevokedCount     float64 `env:"TESSERA_REVOCATION_WEIGHT_REVOKED_COUNT" envDefault:"10"`
	RevocationWeightRecentRevocation float64 `env:"TESSERA_REVOCATION_WEIGHT_RECENT_REVOCATION" envDefault:"10"`
	RevocationWeightRevokedHours     float64 `env:"TESSERA_REVOCATION_WEIGHT_REVOKED_HOURS" envDefault:"2"`
	RevocationWeightOwnerHours       float64 `env:"TESSERA_REVOCATION_WEIGHT_OWNER_HOURS" envDefault:"1"`
	RevocationWeightLicenseAge       float64 `env:"TESSERA_REVOCATION_WEIGHT_LICENSE_AGE" envDefault:"1"`
	RevocationWeightStaleness        float64 `env:"TESSERA_REVOCATION_WEIGHT_STALENESS" envDefault:"1"`
}

// loadConfig reads and validates the configuration.
func loadConfig() (Config, error) {
	cfg, err := env.ParseAs[Config]()
	if err != nil {
		return Config{}, fmt.Errorf("read configuration: %w", err)
	}
	var problems []error
	if _, err := parseLevel(cfg.LogLevel); err != nil {
		problems = append(problems, err)
	}
	if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
		problems = append(problems, fmt.Errorf("TESSERA_LOG_FORMAT must be text or json, not %q", cfg.LogFormat))
	}
	if cfg.Workers < 1 {
		problems = append(problems, fmt.Errorf("TESSERA_WORKERS must be at least 1, not %d", cfg.Workers))
	}
	if cfg.WorkersWhileValidating < 1 {
		problems = append(problems, fmt.Errorf("TESSERA_WORKERS_WHILE_VALIDATING must be at least 1, not %d", cfg.WorkersWhileValidating))
	}
	if cfg.FetchCooldown < river.FetchCooldownMin || cfg.FetchCooldown > time.Second {
		problems = append(problems, fmt.Errorf("TESSERA_FETCH_COOLDOWN must be between %s and 1s, not %s", river.FetchCooldownMin, cfg.FetchCooldown))
	}
	if cfg.WebhookWorkers < 1 {
		problems = append(problems, fmt.Errorf("TESSERA_WEBHOOK_WORKERS must be at least 1, not %d", cfg.WebhookWorkers))
	}
	if cfg.WebhookMaxEndpoints < 1 {
		problems = append(problems, fmt.Errorf("TESSERA_WEBHOOK_MAX_ENDPOINTS must be at least 1, not %d", cfg.WebhookMaxEndpoints))
	}
	if cfg.WebhookTimeout <= 0 {
		problems = append(problems, errors.New("TESSERA_WEBHOOK_TIMEOUT must be positive"))
	}
	if cfg.PprofAddr != "" && !loopback(cfg.PprofAddr) {
		problems = append(problems, fmt.Errorf("TESSERA_PPROF_ADDR must be a loopback address (127.0.0.1:6060), not %q", cfg.PprofAddr))
	}
	if cfg.DBPooler != poolerNone && cfg.DBPooler != poolerTransaction {
		problems = append(problems, fmt.Errorf("TESSERA_DB_POOLER must be %s or %s, not %q", poolerNone, poolerTransaction, cfg.DBPooler))
	}
	if cfg.DBMaxConns < 2 {
		problems = append(problems, fmt.Errorf("TESSERA_DB_MAX_CONNS must be at least 2, not %d", cfg.DBMaxConns))
	}
	if cfg.ShutdownTimeout <= 0 {
		problems = append(problems, errors.New("TESSERA_SHUTDOWN_TIMEOUT must be positive"))
	}
	if cfg.ValidatePerKey <= 0 || cfg.ValidateKeyBurst < 1 || cfg.ValidatePerClient <= 0 || cfg.ValidateClientBurst < 1 {
		problems = append(problems, errors.New("TESSERA_VALIDATE_PER_KEY, _PER_CLIENT must be positive and TESSERA_VALIDATE_KEY_BURST, _CLIENT_BURST at least 1"))
	}
	if cfg.RateMaxAge <= 0 {
		problems = append(problems, errors.New("TESSERA_RATE_MAX_AGE must be positive"))
	}
	if cfg.EventRetention <= 0 {
		problems = append(problems, fmt.Errorf("TESSERA_EVENT_RETENTION must be positive, not %s", cfg.EventRetention))
	}
	if cfg.IdempotencyTTL <= 0 {
		problems = append(problems, errors.New("TESSERA_IDEMPOTENCY_TTL must be positive"))
	}
	if cfg.JobTimeout <= 0 {
		problems = append(problems, errors.New("TESSERA_JOB_TIMEOUT must be positive"))
	}
	if cfg.RescueStuckJobsAfter < 0 {
		problems = append(problems, errors.New("TESSERA_RESCUE_STUCK_JOBS_AFTER must be positive"))
	}
	if cfg.ReadMaxLag <= replica.DefaultInterval {
		problems = append(problems, fmt.Errorf("TESSERA_READ_MAX_LAG must be above %s, the lag check's interval, not %s", replica.DefaultInterval, cfg.ReadMaxLag))
	}
	problems = append(problems, cfg.operatorProblems()...)
	problems = append(problems, cfg.revocationProblems()...)
	if len(problems) == 0 { // the job timeouts are valid: check the rescue bound against them
		if _, err := cfg.rescueStuckJobsAfter(); err != nil {
			problems = append(problems, err)
		}
	}
	return cfg, errors.Join(problems...)
}

// rescueMargin is how much longer than the longest job timeout a job runs before River
// rescues it, by default: time for a timed-out job to return and record its failure.
const rescueMargin = time.Minute

// jobSettings is the jobs configuration of cfg's settings; run adds the dependencies.
func (cfg Config) jobSettings() jobs.Config {
	return jobs.Config{
		JobTimeout: cfg.JobTimeout, WebhookTimeout: cfg.WebhookTimeout, Revocation: cfg.revocation(),
		AllowPrivateNetworks: cfg.AllowPrivateNetworks, EventRetention: cfg.EventRetention,
	}
}

// rescueStuckJobsAfter is RescueStuckJobsAfter, or its default: the longest job timeout plus
// rescueMargin. A bound set no longer than the longest timeout is an error.
func (cfg Config) rescueStuckJobsAfter() (time.Duration, error) {
	longest, err := jobs.LongestTimeout(cfg.jobSettings())
	if err != nil {
		return 0, err
	}
	switch {
	case cfg.RescueStuckJobsAfter == 0:
		return longest + rescueMargin, nil
	case cfg.RescueStuckJobsAfter <= longest:
		return 0, fmt.Errorf("TESSERA_RESCUE_STUCK_JOBS_AFTER (%s) must be above the longest job timeout (%s, from TESSERA_JOB_TIMEOUT, TESSERA_WEBHOOK_TIMEOUT and TESSERA_REVOCATION_TIMEOUT and _PER_FIRING)",
			cfg.RescueStuckJobsAfter, longest)
	}
	return cfg.RescueStuckJobsAfter, nil
}

func parseLevel(s string) (slog.Level, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s)); err != nil { //lint:swallow the message names the variable and its values, which slog's does not
		return 0, fmt.Errorf("TESSERA_LOG_LEVEL must be debug, info, warn or error, not %q", s)
	}
	return level, nil
}

// logger builds the process's logger; logs go to stderr, command output to stdout.
func (cfg Config) logger() *slog.Logger {
	level, _ := parseLevel(cfg.LogLevel) // validated by loadConfig
	opts := &slog.HandlerOptions{Level: level}
	if strings.EqualFold(cfg.LogFormat, "json") {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

// box returns the sealing box of SecretKey.
func (cfg Config) box() (*secrets.Box, error) {
	if cfg.SecretKey == "" {
		return nil, errors.New("TESSERA_SECRET_KEY is not set: generate one with `openssl rand -base64 32` (make run keeps one in .tessera/secret-key)")
	}
	box, err := secrets.Parse(cfg.SecretKey)
	if err != nil {
		return nil, fmt.Errorf("TESSERA_SECRET_KEY: %w", err)
	}
	return box, nil
}

// payments returns the BTCPay client that serve and worker invoice through.
func (cfg Config) payments() (*btcpay.Client, error) {
	client, err := btcpay.New(btcpay.Config{
		BaseURL: cfg.BTCPayURL, StoreID: cfg.BTCPayStoreID, APIKey: cfg.BTCPayAPIKey, WebhookSecret: cfg.BTCPayWebhookSecret,
	})
	if err != nil {
		return nil, fmt.Errorf("TESSERA_BTCPAY_*: %w", err)
	}
	return client, nil
}

// The values of TESSERA_DB_POOLER.
const (
	poolerNone        = "none"
	poolerTransaction = "transaction"
)

// transactionPooled reports whether DATABASE_URL reaches Postgres through a transaction pooler.
func (cfg Config) transactionPooled() bool {
	return cfg.DBPooler == poolerTransaction
}

// queryExecMode is how the pool runs queries, from DATABASE_URL's default_query_exec_mode
// (pgx's cache_statement when absent) and DBPooler.
//
// Behind a transaction pooler, consecutive transactions of one client connection run on
// different server connections, so the named prepared statements of cache_statement (pgx's
// default) are missing on one server and collide on another ("prepared statement ... does not
// exist / already exists"), and describe_exec's second round trip may bind another
// client's unnamed statement on another server ("bind message supplies 4 parameters, but
// prepared statement "" requires 7"). cache_describe sends each query as an unnamed statement, parsed,
// bound and executed in one round trip, with the parameter and result types it described
// once per connection: Tessera's arguments keep their binary encodings (uuid, jsonb as
// []byte, arrays, enums). exec and simple_protocol guess types from Go values and send
// []byte as bytea, which Tessera's jsonb parameters refuse, so they are refused here.
func (cfg Config) queryExecMode(mode pgx.QueryExecMode) (pgx.QueryExecMode, error) {
	switch mode {
	case pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol:
		return 0, fmt.Errorf("DATABASE_URL's default_query_exec_mode=%s sends jsonb parameters as bytea, which Tessera's queries refuse: leave it out, or use cache_describe (TESSERA_DB_POOLER=transaction does)",
			strings.ReplaceAll(mode.String(), " ", "_"))
	case pgx.QueryExecModeCacheStatement, pgx.QueryExecModeDescribeExec:
		if cfg.transactionPooled() {
			return pgx.QueryExecModeCacheDescribe, nil
		}
	}
	return mode, nil
}

// poolConfig is the connection pool's configuration: DatabaseURL's, with DBMaxConns and the
// query exec mode DBPooler needs.
func (cfg Config) poolConfig() (*pgxpool.Config, error) {
	if cfg.DatabaseURL == "" {
		return nil, errors.New("DATABASE_URL is not set (make run and make test set it to the embedded database)")
	}
	return cfg.poolConfigOf("DATABASE_URL", cfg.DatabaseURL)
}

// poolConfigOf is the configuration of a pool connecting to url (named by its variable, for
// errors), with DBMaxConns and the query exec mode DBPooler needs: the primary's pool and the
// read replica's are configured alike.
func (cfg Config) poolConfigOf(variable, url string) (*pgxpool.Config, error) {
	pc, err := pg.PoolConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", variable, err)
	}
	pc.MaxConns = cfg.DBMaxConns
	if pc.ConnConfig.DefaultQueryExecMode, err = cfg.queryExecMode(pc.ConnConfig.DefaultQueryExecMode); err != nil {
		return nil, err
	}
	return pc, nil
}

// pool connects to DatabaseURL.
func (cfg Config) pool(ctx context.Context) (*pgxpool.Pool, error) {
	pc, err := cfg.poolConfig()
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("connect to the database: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to the database: %w", err)
	}
	return pool, nil
}
