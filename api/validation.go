package api

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/licensekey"
	"github.com/tessera/tessera/internal/ratelimit"
	"github.com/tessera/tessera/sql"
)

// ValidateInput is a licence validation request.
type ValidateInput struct {
	Body struct {
		Key         string     `json:"key" maxLength:"512" doc:"The licence key." example:"TSR1.AZKf...Q"`
		Fingerprint *string    `json:"fingerprint,omitempty" minLength:"1" maxLength:"255" doc:"Require this machine to be activated." example:"4c:7f:2a:9e:11:d0"`
		Entitlement *string    `json:"entitlement,omitempty" minLength:"1" maxLength:"200" doc:"Require this entitlement." example:"R_Performance"`
		Version     *string    `json:"version,omitempty" minLength:"1" maxLength:"100" doc:"The product release being run, by version." example:"4.2.0"`
		BuildDate   *time.Time `json:"build_date,omitempty" doc:"The build date of the product being run." example:"2026-03-01T00:00:00Z"`
	}
}

// ValidationLicense summarises the validated licence.
type ValidationLicense struct {
	ID                         uuid.UUID  `json:"id"`
	Status                     string     `json:"status" enum:"active,suspended,revoked,expired"`
	PolicyID                   uuid.UUID  `json:"policy_id"`
	PolicySlug                 string     `json:"policy_slug" example:"pro"`
	CustomerID                 uuid.UUID  `json:"customer_id"`
	ExpiresAt                  *time.Time `json:"expires_at,omitempty"`
	SubscriptionExpirationDate *time.Time `json:"subscription_expiration_date,omitempty"`
	SubscriptionStatus         *string    `json:"subscription_status,omitempty" enum:"active,past_due,lapsed,cancelled"`
	Entitlements               []string   `json:"entitlements"`
	MaxMachines                *int32     `json:"max_machines,omitempty" doc:"The licence's max_machines plus referral_bonus_machines; absent: unlimited."`
	ReferralBonusMachines      int32      `json:"referral_bonus_machines" doc:"Machines the customer earned by referrals (the stored referral bonus)."`
	ActiveMachines             int32      `json:"active_machines"`
}

// ValidateOutput is a validation's answer. It is 200 whatever the verdict.
type ValidateOutput struct {
	Body struct {
		Valid   bool               `json:"valid"`
		Code    string             `json:"code" enum:"VALID,NOT_FOUND,SUSPENDED,REVOKED,EXPIRED,UNKNOWN_RELEASE,BUILD_NOT_COVERED,TOO_MANY_MACHINES,FINGERPRINT_MISMATCH,ENTITLEMENT_MISSING"`
		Message string             `json:"message"`
		License *ValidationLicense `json:"license,omitempty" doc:"Absent when the code is NOT_FOUND."`
	}
}

// validationMessages are the messages of the codes that carry no message of the licence's.
var validationMessages = map[string]string{
	"VALID":                "The licence is valid.",
	"NOT_FOUND":            "No licence matches this key.",
	"SUSPENDED":            "The licence is suspended.",
	"REVOKED":              "The licence has been revoked.",
	"EXPIRED":              "The licence has expired.",
	"UNKNOWN_RELEASE":      "The product has no release with this version.",
	"BUILD_NOT_COVERED":    "This build was released after the licence's subscription ended.",
	"TOO_MANY_MACHINES":    "More machines are active than the licence allows.",
	"FINGERPRINT_MISMATCH": "This machine is not activated on the licence.",
	"ENTITLEMENT_MISSING":  "The licence does not include this entitlement.",
}

const validateDescription = "Needs no API key: the licence key is the credential. Answers 200 with a verdict code " +
	"(see the enum); garbage, forged and unknown keys are all NOT_FOUND. A licence that a cancelled subscription left perpetual " +
	"is VALID for builds released up to its subscription_expiration_date (with its message) and BUILD_NOT_COVERED after. " +
	"A lapsed subscription's licence is EXPIRED. Rate-limited per licence key and per client address: over the limit the " +
	"answer is 429 with Retry-After (seconds). A server with a read replica may answer VALID from it: a revocation, suspension " +
	"or expiry then takes effect within its staleness bound (TESSERA_READ_MAX_LAG, default 1 s); every other verdict is the primary's."

func (s *Server) registerValidation() {
	huma.Register(s.api, licenseValidateOperation, s.licenseValidate)
}

var licenseValidateOperation = huma.Operation{
	OperationID: "license-validate",
	Method:      http.MethodPost,
	Path:        "/v1/licenses/validate",
	Summary:     "Validate a licence key",
	Description: validateDescription,
	Tags:        []string{"Validation"},
	Errors:      []int{http.StatusTooManyRequests},
	Metadata:    map[string]any{metadataReadOnly: true},
}

// licenseValidate answers whether a licence key is valid, and why not, within the rate
// limits (validateAllowed), ahead of the process's jobs (Config.Priority). It may read a replica (s.read): only a VALID verdict is answered
// from it, and any other verdict is read again on the primary, so a stale replica can delay a
// licence becoming invalid by at most its lag bound, and never makes a licence issued or
// changed a moment ago look invalid.
func (s *Server) licenseValidate(ctx context.Context, in *ValidateInput) (*ValidateOutput, error) {
	s.cfg.Priority.Begin() // the process's jobs wait while validations are answered
	defer s.cfg.Priority.End()
	now := s.cfg.Clock.Now() // rate limits run on real time; the licence's tenant's clock decides validity
	if err := s.validateAllowed(ctx, in.Body.Key, now); err != nil {
		return nil, err
	}
	out := &ValidateOutput{}
	var row sql.LicenseValidateRow
	err := s.read(ctx, func(ctx context.Context) (bool, error) { // only VALID stands on a replica
		var err error
		row, err = s.validate(ctx, in, now)
		return err == nil && row.Code == "VALID", err
	})
	switch {
	case errors.Is(err, core.ErrNotFound):
		out.Body.Code = "NOT_FOUND"
	case err != nil:
		return nil, problem(ctx, err)
	default:
		out.Body.Code = row.Code
		out.Body.License = validationLicenseFrom(row)
	}
	out.Body.Valid = out.Body.Code == "VALID"
	out.Body.Message = validationMessages[out.Body.Code]
	if row.Message != nil && (out.Body.Code == "VALID" || out.Body.Code == "BUILD_NOT_COVERED") {
		out.Body.Message = *row.Message
	}
	return out, nil
}

// validationLicenseFrom is the validated licence as a validation's answer shows it.
func validationLicenseFrom(row sql.LicenseValidateRow) *ValidationLicense {
	l := &ValidationLicense{
		ID: row.ID, Status: string(row.Status), PolicyID: row.PolicyID, PolicySlug: row.PolicySlug, CustomerID: row.CustomerID,
		ExpiresAt: row.ExpiresAt, SubscriptionExpirationDate: row.SubscriptionExpirationDate, Entitlements: row.Entitlements,
		MaxMachines: row.EffectiveMaxMachines, ReferralBonusMachines: row.ReferralBonusUnits, ActiveMachines: row.ActiveMachines,
	}
	if row.SubscriptionStatus != nil {
		status := string(*row.SubscriptionStatus)
		l.SubscriptionStatus = &status
	}
	return l
}

// validate runs the one validation query for a well-formed key and checks that the key is
// the licence's, marked as its tenant's mode is (live or sandbox); anything else is
// core.ErrNotFound. The query decides at the tenant's time: a sandbox tenant's clock, else now.
func (s *Server) validate(ctx context.Context, in *ValidateInput, now time.Time) (sql.LicenseValidateRow, error) {
	parsed, err := licensekey.Parse(in.Body.Key)
	if err != nil { //lint:swallow a malformed or forged key is NOT_FOUND, exactly like an unknown one
		return sql.LicenseValidateRow{}, core.ErrNotFound
	}
	row, err := s.queries.LicenseValidate(ctx, s.conn(ctx), sql.LicenseValidateParams{
		TenantID: parsed.TenantID, LicenseID: parsed.LicenseID, Now: now, Fingerprint: in.Body.Fingerprint,
		Entitlement: in.Body.Entitlement, Version: in.Body.Version, BuildDate: in.Body.BuildDate,
	})
	if err != nil {
		return sql.LicenseValidateRow{}, fmt.Errorf("validate licence: %w", err)
	}
	if !core.KeyMatches(row.Key, in.Body.Key) || parsed.Sandbox != row.Sandbox {
		return sql.LicenseValidateRow{}, core.ErrNotFound
	}
	return row, nil
}

// validateAllowed applies the validation rate limits: per client address, then per key.
func (s *Server) validateAllowed(ctx context.Context, key string, now time.Time) error {
	for _, limit := range []struct {
		limiter   *ratelimit.Limiter
		key, what string
	}{
		{s.validateByClient, requestInfoFrom(ctx).client, "this client"},
		{s.validateByKey, key, "this licence key"},
	} {
		if ok, retry := limit.limiter.Allow(limit.key, now); !ok {
			seconds := strconv.Itoa(int(math.Ceil(retry.Seconds())))
			return huma.ErrorWithHeaders(
				newProblem(CodeRateLimited, "too many validations for "+limit.what+"; retry after "+seconds+" s"),
				http.Header{"Retry-After": {seconds}})
		}
	}
	return nil
}
