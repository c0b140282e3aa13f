package jobargs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// TenantJob is the args of a job that belongs to one tenant. Every such job carries the River
// tag TenantTag(tenant) and the metadata {"tenant_id": "<tenant>"}, which tenantHook adds as
// the job is inserted, whoever inserts it: River UI filters by the tag, and the jobs API and
// CLI scope by the metadata (queries/jobs.sql). A job whose args are not a TenantJob (the
// periodic sweeps across tenants, revocation.check, and payin.settle, whose provider webhook
// names an invoice before Tessera knows its tenant) carries neither.
type TenantJob interface {
	river.JobArgs
	river.JobArgsWithHooks
	// Tenant is the tenant the job belongs to; never uuid.Nil.
	Tenant() uuid.UUID
}

// MetadataTenantID is the key of a tenant job's tenant id in its River metadata.
const MetadataTenantID = "tenant_id"

// TenantTag is the River tag of tenantID's jobs: "tenant_" and the id, which River's tag
// format (word characters with inner dashes, at most 255) accepts.
func TenantTag(tenantID uuid.UUID) string { return "tenant_" + tenantID.String() }

// tenantHooks is what every TenantJob's Hooks returns.
var tenantHooks = []rivertype.Hook{&tenantHook{}}

// tenantHook adds a TenantJob's tag and metadata as it is inserted. River computes a job's
// unique key from its kind and args (and period, queue or state where asked) before hooks
// run, never from tags or metadata, so UniqueOpts work as before.
type tenantHook struct{ river.HookDefaults }

// InsertBegin adds the tenant tag and merges the tenant id into the metadata; a TenantJob
// without a tenant is refused, so that a job is never inserted that no tenant can see.
func (*tenantHook) InsertBegin(_ context.Context, params *rivertype.JobInsertParams) error {
	job, ok := params.Args.(TenantJob)
	if !ok {
		return fmt.Errorf("insert %s: its args are not a jobargs.TenantJob", params.Kind)
	}
	tenantID := job.Tenant()
	if tenantID == uuid.Nil {
		return fmt.Errorf("insert %s: %w", params.Kind, errNoTenant)
	}
	metadata := map[string]json.RawMessage{}
	if len(params.Metadata) > 0 {
		if err := json.Unmarshal(params.Metadata, &metadata); err != nil {
			return fmt.Errorf("insert %s: decode metadata: %w", params.Kind, err)
		}
	}
	metadata[MetadataTenantID] = json.RawMessage(`"` + tenantID.String() + `"`)
	encoded, err := json.Marshal(metadata)
	if err != nil {
		return fmt.Errorf("insert %s: encode metadata: %w", params.Kind, err)
	}
	params.Metadata = encoded
	if tag := TenantTag(tenantID); !slices.Contains(params.Tags, tag) {
		params.Tags = append(params.Tags, tag)
	}
	return nil
}

// errNoTenant is why a TenantJob without a tenant is not inserted.
var errNoTenant = errors.New("a tenant job needs its tenant id")
