// Package api is Tessera's HTTP surface: Huma operations, one file per resource, on the
// standard library mux, with the middleware every request passes through (request ids,
// logs, metrics, text screening, authentication, one transaction per write, idempotency
// keys) and the bounds of every error answer.
package api

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/metrics"
	"github.com/tessera/tessera/internal/payment"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/priority"
	"github.com/tessera/tessera/internal/ratelimit"
	"github.com/tessera/tessera/internal/secrets"
	"github.com/tessera/tessera/internal/upstream"
	"github.com/tessera/tessera/sql"
)

// Version is the API version published in the OpenAPI document.
const Version = "0.1.0"

// securityAdminKey names the Bearer scheme of admin operations in the OpenAPI document.
const securityAdminKey = "adminKey"

// Config holds the server's dependencies.
type Config struct {
	// DB runs queries and opens the one transaction of each write. Required.
	DB pg.DB
	// Clock is the time of every request. Required.
	Clock clock.Clock
	// Jobs enqueues River jobs in the request's transaction, and retries and cancels them
	// (the jobs resource): a River client; an insert-only one is enough. Required.
	Jobs JobClient
	// Box seals and opens secrets at rest (signing keys, webhook secrets). Required.
	Box *secrets.Box
	// Payments verifies the payment provider's webhooks. Required.
	Payments payment.Provider
	// ProviderConfirmTimeout bounds how long a provider webhook waits for the provider to
	// re-confirm its invoice before it leaves the settle to a payin.settle job. Default 3s.
	ProviderConfirmTimeout time.Duration
	// Rates converts fiat prices to sats at purchase time. Required.
	Rates payment.RateSource
	// Log receives request logs. Required.
	Log *slog.Logger
	// Metrics is where request metrics are registered and what /metrics serves. Required.
	Metrics *prometheus.Registry
	// Outcomes counts the domain outcomes (renewals, PayIns) of every write once its
	// transaction has committed. Required.
	Outcomes *metrics.Domain
	// Ready reports whether the server can serve: the database is reachable and migrated.
	// Required.
	Ready func(ctx context.Context) error
	// Revocation holds the revocation queue's score weights and minimum check interval
	// (the check loop's, so the queue shows what it will pick). Default
	// upstream.DefaultSchedule.
	Revocation upstream.Schedule
	// IdempotencyTTL is how long a stored Idempotency-Key response is replayed. Default 24h.
	IdempotencyTTL time.Duration
	// WebhookMaxEndpoints is how many webhook endpoints a tenant may have. Default 20.
	WebhookMaxEndpoints int
	// ClockAdvanceInline is how many things falling due an advance of a sandbox's clock does
	// within its request; an advance with more answers 202 and goes on in a clock.advance
	// job. Default 2000.
	ClockAdvanceInline int
	// ValidatePerKey limits validations per licence key. Default 5 per second, bursts of 20.
	ValidatePerKey RateLimit
	// ValidatePerClient limits validations per client address. Default 50 per second,
	// bursts of 100.
	ValidatePerClient RateLimit
	// Reads runs the read-only operations that may read a streaming replica — licence
	// validation, PayIn polling (payin-get) and tenants' public keys — on one, within its
	// staleness bound (replica.Router, which serve builds from TESSERA_READ_DATABASE_URL).
	// Everything else reads DB: admin reads, so that a client reads its own writes at once,
	// and every write. Optional: without it, every operation reads DB.
	Reads Reader
	// Priority counts the validations in flight, while which the process's jobs are held
	// back (serve's River middleware) and provider webhooks leave their settle to the
	// payin.settle job. Optional: without it, validations have no priority.
	Priority *priority.Gate
	// Mounts are other handlers served beside the operations, by mux pattern (serve mounts
	// River UI under /riverui/ so). Requests to them get a request id, a log line and
	// metrics like operations, and nothing else: they authenticate their own requests, and
	// they are not in the OpenAPI document. Their reads (GET, HEAD) are logged at debug
	// level, their writes at info. Optional.
	Mounts map[string]http.Handler
}

// Reader runs read-only queries on a read replica, or on the primary when the replica is not
// usable (replica.Router). fn runs the queries on db and says whether its answer is final; an
// answer that is not, and a failure on the replica, is read again on the primary, whose
// answer stands.
type Reader interface {
	Read(ctx context.Context, fn func(db sql.DBTX) (final bool, err error)) error
}

// RateLimit is a token bucket: PerSecond on average, up to Burst at once.
type RateLimit struct {
	PerSecond float64
	Burst     int
}

func (r RateLimit) orDefault(perSecond float64, burst int) RateLimit {
	if r.PerSecond <= 0 || r.Burst <= 0 {
		return RateLimit{PerSecond: perSecond, Burst: burst}
	}
	return r
}

// Server serves Tessera's HTTP API.
type Server struct {
	cfg     Config
	queries *sql.Queries
	mux     *http.ServeMux
	api     huma.API
	metrics *httpMetrics

	validateByKey    *ratelimit.Limiter
	validateByClient *ratelimit.Limiter
}

// New validates cfg and returns a server with every operation registered.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.DB == nil:
		return nil, errors.New("api: Config.DB is required")
	case cfg.Clock == nil:
		return nil, errors.New("api: Config.Clock is required")
	case cfg.Jobs == nil:
		return nil, errors.New("api: Config.Jobs is required")
	case cfg.Box == nil:
		return nil, errors.New("api: Config.Box is required")
	case cfg.Payments == nil:
		return nil, errors.New("api: Config.Payments is required")
	case cfg.Rates == nil:
		return nil, errors.New("api: Config.Rates is required")
	case cfg.Log == nil:
		return nil, errors.New("api: Config.Log is required")
	case cfg.Metrics == nil:
		return nil, errors.New("api: Config.Metrics is required")
	case cfg.Outcomes == nil:
		return nil, errors.New("api: Config.Outcomes is required")
	case cfg.Ready == nil:
		return nil, errors.New("api: Config.Ready is required")
	}
	cfg.DB = core.DB(cfg.DB)
	if cfg.IdempotencyTTL == 0 {
		cfg.IdempotencyTTL = 24 * time.Hour
	}
	if cfg.ProviderConfirmTimeout == 0 {
		cfg.ProviderConfirmTimeout = 3 * time.Second
	}
	if cfg.ProviderConfirmTimeout < 0 {
		return nil, errors.New("api: Config.ProviderConfirmTimeout must be positive")
	}
	if cfg.WebhookMaxEndpoints == 0 {
		cfg.WebhookMaxEndpoints = core.WebhookMaxEndpointsDefault
	}
	if cfg.WebhookMaxEndpoints < 0 {
		return nil, errors.New("api: Config.WebhookMaxEndpoints must be positive")
	}
	if cfg.ClockAdvanceInline == 0 {
		cfg.ClockAdvanceInline = 2000
	}
	if cfg.ClockAdvanceInline < 0 {
		return nil, errors.New("api: Config.ClockAdvanceInline must be positive")
	}
	metrics, err := newHTTPMetrics(cfg.Metrics)
	if err != nil {
		return nil, err
	}
	perKey := cfg.ValidatePerKey.orDefault(5, 20)
	perClient := cfg.ValidatePerClient.orDefault(50, 100)
	s := &Server{
		cfg: cfg, queries: sql.New(), metrics: metrics,
		validateByKey:    ratelimit.New(perKey.PerSecond, perKey.Burst),
		validateByClient: ratelimit.New(perClient.PerSecond, perClient.Burst),
	}
	s.register()
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Metrics, promhttp.HandlerOpts{}))
	for pattern, h := range cfg.Mounts {
		s.mux.Handle(pattern, h)
	}
	return s, nil
}

// Spec returns the OpenAPI document of every operation without needing a database.
func Spec() *huma.OpenAPI {
	s := &Server{}
	s.register()
	return s.api.OpenAPI()
}

// Handler returns the server's root handler.
func (s *Server) Handler() http.Handler {
	return s.observe(s.mux)
}

// register builds the mux and the Huma API and registers every operation on them.
func (s *Server) register() {
	config := huma.DefaultConfig("Tessera", Version)
	config.Info.Description = "Licensing and subscription backend. Admin operations take a tenant's API key " +
		"as `Authorization: Bearer <key>`; writes accept an `Idempotency-Key` header (an admin key's are its tenant's; " +
		"a buyer write's are scoped by the tenant it names). Errors are RFC 9457 problem+json. " +
		"Any operation answers 503 with `Retry-After` while the database is unreachable (a restart, an outage), " +
		"or when the database aborted it to break a deadlock with a concurrent request (nothing was written): " +
		"retry it, a write with the same `Idempotency-Key`."
	config.OpenAPIPath = ""  // registerDocuments serves the documents
	config.DocsPath = ""     // registerDocs serves /docs from the binary
	config.CreateHooks = nil // no $schema fields or Link headers in responses
	config.Transformers = []huma.Transformer{boundErrors}
	describeUUIDs(config.Components.Schemas)
	config.Components.SecuritySchemes = map[string]*huma.SecurityScheme{
		securityAdminKey: {Type: "http", Scheme: "bearer", Description: "A tenant's admin API key (tsk_..., a sandbox tenant's tsk_test_...)."},
	}
	s.mux = http.NewServeMux()
	s.api = humago.New(s.mux, config)
	s.api.UseMiddleware(s.operation, s.screenParams, s.authenticate, s.screenBody, s.resolveBuyer, s.transact)

	s.registerDocuments()
	s.registerDocs()
	s.registerHealth()
	s.registerTenants()
	s.registerSandboxData()
	s.registerAPIKeys()
	s.registerAuditLog()
	s.registerProducts()
	s.registerPolicies()
	s.registerAddons()
	s.registerCustomers()
	s.registerLicenses()
	s.registerMachines()
	s.registerSubscriptions()
	s.registerRenewals()
	s.registerTierChanges()
	s.registerValidation()
	s.registerPayIns()
	s.registerProviders()
	s.registerWebhooks()
	s.registerJobs()
	s.registerReferrals()
	s.registerUpstreamStores()
	s.registerRevocation()
	s.registerClock()
	describeRawBodies(s.api.OpenAPI())
	publishEvents(s.api.OpenAPI())
	describeContract(s.api.OpenAPI())
	for _, schema := range s.api.OpenAPI().Components.Schemas.Map() {
		allowNullInEnums(schema)
	}
}

// allowNullInEnums adds null to the enum of every nullable schema in s (a nullable *string
// field with an enum tag): Huma publishes such a field as type [string, null] with an enum
// of its strings only, so a null it sends breaks its own document.
func allowNullInEnums(s *huma.Schema) {
	if s == nil {
		return
	}
	if s.Nullable && len(s.Enum) > 0 && !slices.Contains(s.Enum, any(nil)) {
		s.Enum = append(s.Enum, nil)
	}
	allowNullInEnums(s.Items)
	for _, p := range s.Properties {
		allowNullInEnums(p)
	}
	for _, group := range [][]*huma.Schema{s.OneOf, s.AnyOf, s.AllOf} {
		for _, sub := range group {
			allowNullInEnums(sub)
		}
	}
}

// describeRawBodies rewrites the schemas Huma gives raw request bodies (a string with format
// binary, which it publishes with contentMediaType, a keyword OpenAPI 3.0 does not have) as
// plain strings, so that both documents stay valid.
func describeRawBodies(doc *huma.OpenAPI) {
	for _, item := range doc.Paths {
		for _, op := range []*huma.Operation{item.Get, item.Put, item.Post, item.Patch, item.Delete} {
			if op == nil || op.RequestBody == nil {
				continue
			}
			for _, media := range op.RequestBody.Content {
				if media.Schema != nil && media.Schema.Format == "binary" {
					media.Schema.Format = ""
					media.Schema.Description = "The raw request body."
				}
			}
		}
	}
}

// optionalAdminOperation is a buyer operation that a seller's backend may also call with its
// admin key, which unlocks more (spending a customer's custodial balances).
func optionalAdminOperation(op huma.Operation) huma.Operation {
	op.Security = []map[string][]string{{}, {securityAdminKey: {}}}
	op.Errors = append(op.Errors, http.StatusUnauthorized)
	return op
}

// adminOperation fills in what every admin operation shares: its security and error
// responses.
func adminOperation(op huma.Operation) huma.Operation {
	op.Security = []map[string][]string{{securityAdminKey: {}}}
	op.Errors = append(op.Errors, http.StatusUnauthorized)
	return op
}
