package api_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/internal/jobargs"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/internal/webhook"
	"github.com/tessera/tessera/sql"
)

type webhookEndpoint struct {
	ID         string   `json:"id"`
	URL        string   `json:"url"`
	EventTypes []string `json:"event_types"`
	Enabled    bool     `json:"enabled"`
	Secret     string   `json:"secret"`
	CreatedAt  string   `json:"created_at"`
	UpdatedAt  string   `json:"updated_at"`
}

type webhookDelivery struct {
	ID            string  `json:"id"`
	EndpointID    string  `json:"endpoint_id"`
	EventID       string  `json:"event_id"`
	EventType     string  `json:"event_type"`
	State         string  `json:"state"`
	Attempts      int     `json:"attempts"`
	LastAttemptAt *string `json:"last_attempt_at"`
	LastStatus    *int    `json:"last_status"`
	LastError     *string `json:"last_error"`
	NextAttemptAt *string `json:"next_attempt_at"`
	FinishedAt    *string `json:"finished_at"`
}

// createEndpoint creates an endpoint through the API and returns it with its secret.
func (b *bundle) createEndpoint(t *testing.T, url string, types ...string) webhookEndpoint {
	t.Helper()
	body := `{"url":"` + url + `","event_types":["` + strings.Join(types, `","`) + `"]}`
	res := b.request(t, http.MethodPost, "/v1/admin/webhook-endpoints", body)
	require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
	return decode[webhookEndpoint](t, res)
}

// emit emits an event of the bundle's tenant, as a licence or subscription change would, with
// an insert-only River client.
func (b *bundle) emit(t *testing.T, eventType string) {
	t.Helper()
	ctx := context.Background()
	inserter, err := river.NewClient(riverpgxv5.New(nil), &river.Config{})
	require.NoError(t, err)
	require.NoError(t, pg.InTx(ctx, b.db, func(tx pgx.Tx) error {
		return core.Emit(ctx, tx, core.Step{Jobs: inserter, Now: b.clock.Now()}, core.Event{TenantID: b.tenant.ID, Data: eventData(t, eventType)})
	}))
}

// deliveries lists the tenant's deliveries through the API with the query given.
func (b *bundle) deliveries(t *testing.T, query string) page[webhookDelivery] {
	t.Helper()
	res := b.request(t, http.MethodGet, "/v1/admin/webhook-deliveries"+query, "")
	require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
	return decode[page[webhookDelivery]](t, res)
}

// finish records a delivery's final attempt, as the webhook.deliver worker does.
func (b *bundle) finish(t *testing.T, id string, state sql.DeliveryState) {
	t.Helper()
	_, err := sql.New().WebhookDeliveryRecordAttempt(context.Background(), b.db, sql.WebhookDeliveryRecordAttemptParams{
		TenantID: b.tenant.ID, ID: uuid.MustParse(id), Succeeded: state == sql.DeliveryStateSucceeded, AttemptedAt: b.clock.Now(),
		RetryAt: b.clock.Now().Add(time.Minute), MaxAttempts: 1, LastStatus: new(int32(503)), LastError: new("HTTP 503"), Now: b.clock.Now(),
	})
	require.NoError(t, err)
}

// deliverJobs counts the live (not finished) webhook.deliver jobs of an endpoint.
func (b *bundle) deliverJobs(t *testing.T, endpointID string) int {
	t.Helper()
	var n int
	require.NoError(t, b.db.QueryRow(context.Background(), `SELECT count(*) FROM river_job WHERE kind = $1 AND args->>'endpoint_id' = $2
		AND state NOT IN ('completed', 'cancelled', 'discarded')`, jobargs.WebhookDeliver{}.Kind(), endpointID).Scan(&n))
	return n
}

// completeDeliverJobs marks the endpoint's live webhook.deliver jobs completed, as a run
// that found nothing more to send leaves them.
func (b *bundle) completeDeliverJobs(t *testing.T, endpointID string) {
	t.Helper()
	_, err := b.db.Exec(context.Background(), `UPDATE river_job SET state = 'completed', finalized_at = now() WHERE kind = $1 AND args->>'endpoint_id' = $2`,
		jobargs.WebhookDeliver{}.Kind(), endpointID)
	require.NoError(t, err)
}

func TestWebhookEndpoints(t *testing.T) {
	t.Parallel()

	t.Run("CreateGetListUpdateDelete", func(t *testing.T) {
		t.Parallel()
		b := setup(t)

		created := b.createEndpoint(t, "https://example.com/hooks", "license.revoked", "license.issued", "license.issued")
		require.Equal(t, "https://example.com/hooks", created.URL)
		require.Equal(t, []string{"license.issued", "license.revoked"}, created.EventTypes, "sorted, without duplicates")
		require.True(t, created.Enabled)
		require.Regexp(t, `^whsec_[A-Za-z0-9+/]{43}=$`, created.Secret)
		key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(created.Secret, "whsec_"))
		require.NoError(t, err)
		require.Len(t, key, 32)

		got := decode[webhookEndpoint](t, b.request(t, http.MethodGet, "/v1/admin/webhook-endpoints/"+created.ID, ""))
		want := created
		want.Secret = ""
		require.Equal(t, want, got)

		res := b.request(t, http.MethodPatch, "/v1/admin/webhook-endpoints/"+created.ID,
			`{"url":"http://hooks.example.org:8080/in?x=1","event_types":["machine.activated"],"enabled":false}`)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		updated := decode[webhookEndpoint](t, res)
		require.Equal(t, "http://hooks.example.org:8080/in?x=1", updated.URL)
		require.Equal(t, []string{"machine.activated"}, updated.EventTypes)
		require.False(t, updated.Enabled)

		b.clock.Advance(time.Hour)
		res = b.request(t, http.MethodPatch, "/v1/admin/webhook-endpoints/"+created.ID, `{"enabled":true}`)
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		reenabled := decode[webhookEndpoint](t, res)
		require.True(t, reenabled.Enabled)
		require.Equal(t, updated.URL, reenabled.URL, "fields not given keep their value")
		require.Equal(t, updated.EventTypes, reenabled.EventTypes)
		require.NotEqual(t, updated.UpdatedAt, reenabled.UpdatedAt)

		list := decode[page[webhookEndpoint]](t, b.request(t, http.MethodGet, "/v1/admin/webhook-endpoints", ""))
		require.Len(t, list.Items, 1)
		require.Equal(t, reenabled, list.Items[0])

		res = b.request(t, http.MethodDelete, "/v1/admin/webhook-endpoints/"+created.ID, "")
		require.Equal(t, http.StatusNoContent, res.status, "body: %s", res.body)
		require.Empty(t, res.body)
		requireProblem(t, b.request(t, http.MethodGet, "/v1/admin/webhook-endpoints/"+created.ID, ""), http.StatusNotFound)
		requireProblem(t, b.request(t, http.MethodDelete, "/v1/admin/webhook-endpoints/"+created.ID, ""), http.StatusNotFound)
	})

	t.Run("CapPerTenant", func(t *testing.T) {
		t.Parallel()
		b, srv := setupServer(t)
		// More concurrent creations than the cap: each counts the others (the tenant's row is
		// locked), so exactly the cap are created.
		const tries = core.WebhookMaxEndpointsDefault + 5
		statuses := make([]int, tries)
		var wg sync.WaitGroup
		for i := range tries {
			wg.Go(func() {
				statuses[i] = b.send(t, srv, http.MethodPost, "/v1/admin/webhook-endpoints",
					fmt.Sprintf(`{"url":"https://hooks.example/%d","event_types":["license.issued"]}`, i)).status
			})
		}
		wg.Wait()
		created := 0
		for _, status := range statuses {
			require.Contains(t, []int{http.StatusCreated, http.StatusConflict}, status)
			if status == http.StatusCreated {
				created++
			}
		}
		require.Equal(t, core.WebhookMaxEndpointsDefault, created)

		p := requireCode(t, b.send(t, srv, http.MethodPost, "/v1/admin/webhook-endpoints", `{"url":"https://hooks.example/more","event_types":["license.issued"]}`), http.StatusConflict, api.CodeWebhookEndpointLimit)
		require.Contains(t, p.Detail, "the tenant has 20 webhook endpoints, the most allowed (TESSERA_WEBHOOK_MAX_ENDPOINTS)")
		list := decode[page[webhookEndpoint]](t, b.send(t, srv, http.MethodGet, "/v1/admin/webhook-endpoints?limit=100", ""))
		require.Len(t, list.Items, core.WebhookMaxEndpointsDefault)

		other := factory.Tenant(t, b.db)
		_, err := otherEndpoint(b, other.ID)
		require.NoError(t, err, "the cap is per tenant")
	})

	t.Run("SecretIsShownOnlyOnCreateAndRotate", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		created := b.createEndpoint(t, "https://example.com/hooks", "license.issued")

		for _, res := range []response{
			b.request(t, http.MethodGet, "/v1/admin/webhook-endpoints/"+created.ID, ""),
			b.request(t, http.MethodGet, "/v1/admin/webhook-endpoints", ""),
			b.request(t, http.MethodPatch, "/v1/admin/webhook-endpoints/"+created.ID, `{"enabled":false}`),
			b.request(t, http.MethodGet, "/v1/admin/audit-log", ""),
		} {
			require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
			require.NotContains(t, string(res.body), "secret\"")
			require.NotContains(t, string(res.body), created.Secret)
			require.NotContains(t, string(res.body), "whsec_")
		}
	})

	t.Run("RotateSecret", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		created := b.createEndpoint(t, "https://example.com/hooks", "license.issued")

		res := b.request(t, http.MethodPost, "/v1/admin/webhook-endpoints/"+created.ID+"/rotate-secret", "")
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		rotated := decode[webhookEndpoint](t, res)
		require.Regexp(t, `^whsec_[A-Za-z0-9+/]{43}=$`, rotated.Secret)
		require.NotEqual(t, created.Secret, rotated.Secret)
		require.Equal(t, created.ID, rotated.ID)

		// What the worker signs with is the new secret, sealed for this endpoint only.
		endpoint, err := sql.New().WebhookEndpointGet(context.Background(), b.db, sql.WebhookEndpointGetParams{TenantID: b.tenant.ID, ID: uuid.MustParse(created.ID)})
		require.NoError(t, err)
		opened, err := factory.Box.Open(endpoint.SecretSealed, webhook.SecretLabel(endpoint.ID))
		require.NoError(t, err)
		require.Equal(t, rotated.Secret, string(opened))
		require.NotContains(t, string(endpoint.SecretSealed), rotated.Secret, "sealed at rest")

		requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/webhook-endpoints/"+uuid.NewString()+"/rotate-secret", ""), http.StatusNotFound)
	})

	t.Run("BadInput", func(t *testing.T) {
		t.Parallel()
		for _, tt := range []struct {
			name   string
			method string // POST creates; PATCH updates an endpoint created first
			body   string
		}{
			{name: "FTPURL", method: http.MethodPost, body: `{"url":"ftp://example.com/hooks","event_types":["license.issued"]}`},
			{name: "RelativeURL", method: http.MethodPost, body: `{"url":"/hooks","event_types":["license.issued"]}`},
			{name: "NoHost", method: http.MethodPost, body: `{"url":"https://","event_types":["license.issued"]}`},
			{name: "NotAURL", method: http.MethodPost, body: `{"url":"https://exa mple.com/%zz","event_types":["license.issued"]}`},
			{name: "EmptyURL", method: http.MethodPost, body: `{"url":"","event_types":["license.issued"]}`},
			{name: "LongURL", method: http.MethodPost, body: `{"url":"https://example.com/` + strings.Repeat("a", 2000) + `","event_types":["license.issued"]}`},
			{name: "MissingURL", method: http.MethodPost, body: `{"event_types":["license.issued"]}`},
			{name: "UnknownEventType", method: http.MethodPost, body: `{"url":"https://example.com/hooks","event_types":["license.issued","license.exploded"]}`},
			{name: "EmptyEventTypes", method: http.MethodPost, body: `{"url":"https://example.com/hooks","event_types":[]}`},
			{name: "NullEventTypes", method: http.MethodPost, body: `{"url":"https://example.com/hooks","event_types":null}`},
			{name: "MissingEventTypes", method: http.MethodPost, body: `{"url":"https://example.com/hooks"}`},
			{name: "SecretIsNotAccepted", method: http.MethodPost, body: `{"url":"https://example.com/hooks","event_types":["license.issued"],"secret":"whsec_AAAA"}`},
			{name: "UpdateFTPURL", method: http.MethodPatch, body: `{"url":"ftp://example.com/hooks"}`},
			{name: "UpdateNoHost", method: http.MethodPatch, body: `{"url":"http:///path"}`},
			{name: "UpdateEmptyEventTypes", method: http.MethodPatch, body: `{"event_types":[]}`},
			{name: "UpdateUnknownEventType", method: http.MethodPatch, body: `{"event_types":["nope.nope"]}`},
			{name: "UpdateEnabledNotBoolean", method: http.MethodPatch, body: `{"enabled":"yes"}`},
		} {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				b := setup(t)
				if tt.method == http.MethodPost {
					requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/webhook-endpoints", tt.body), http.StatusUnprocessableEntity)
					list := decode[page[webhookEndpoint]](t, b.request(t, http.MethodGet, "/v1/admin/webhook-endpoints", ""))
					require.Empty(t, list.Items, "the refused create made no endpoint")
					return
				}
				created := b.createEndpoint(t, "https://example.com/hooks", "license.issued")
				requireProblem(t, b.request(t, http.MethodPatch, "/v1/admin/webhook-endpoints/"+created.ID, tt.body), http.StatusUnprocessableEntity)
				got := decode[webhookEndpoint](t, b.request(t, http.MethodGet, "/v1/admin/webhook-endpoints/"+created.ID, ""))
				created.Secret = ""
				require.Equal(t, created, got, "the refused update changed nothing")
			})
		}
	})

	t.Run("Pagination", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		for range 5 {
			b.createEndpoint(t, "https://example.com/hooks", "license.issued")
		}
		var seen []string
		cursor := ""
		for {
			p := decode[page[webhookEndpoint]](t, b.request(t, http.MethodGet, "/v1/admin/webhook-endpoints?limit=2&after="+cursor, ""))
			require.LessOrEqual(t, len(p.Items), 2)
			for _, e := range p.Items {
				seen = append(seen, e.ID)
			}
			if p.NextCursor == "" {
				break
			}
			cursor = p.NextCursor
		}
		require.Len(t, seen, 5)
		require.IsIncreasing(t, seen, "oldest first")
	})

	t.Run("OtherTenantsEndpointIsNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		other := factory.Tenant(t, b.db)
		theirs, err := otherEndpoint(b, other.ID)
		require.NoError(t, err)
		path := "/v1/admin/webhook-endpoints/" + theirs.ID.String()

		requireProblem(t, b.request(t, http.MethodGet, path, ""), http.StatusNotFound)
		requireProblem(t, b.request(t, http.MethodPatch, path, `{"enabled":false}`), http.StatusNotFound)
		requireProblem(t, b.request(t, http.MethodPost, path+"/rotate-secret", ""), http.StatusNotFound)
		requireProblem(t, b.request(t, http.MethodDelete, path, ""), http.StatusNotFound)
		require.Empty(t, decode[page[webhookEndpoint]](t, b.request(t, http.MethodGet, "/v1/admin/webhook-endpoints", "")).Items)
		require.Empty(t, b.deliveries(t, "?endpoint_id="+theirs.ID.String()).Items)

		still, err := sql.New().WebhookEndpointGet(context.Background(), b.db, sql.WebhookEndpointGetParams{TenantID: other.ID, ID: theirs.ID})
		require.NoError(t, err)
		require.True(t, still.Enabled)
		require.Equal(t, theirs.SecretSealed, still.SecretSealed)
	})

	t.Run("Audited", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		created := b.createEndpoint(t, "https://example.com/hooks", "license.issued")
		b.request(t, http.MethodPatch, "/v1/admin/webhook-endpoints/"+created.ID, `{"enabled":false}`)
		b.request(t, http.MethodPost, "/v1/admin/webhook-endpoints/"+created.ID+"/rotate-secret", "")
		b.request(t, http.MethodDelete, "/v1/admin/webhook-endpoints/"+created.ID, "")

		type entry struct {
			Action    string         `json:"action"`
			SubjectID string         `json:"subject_id"`
			Details   map[string]any `json:"details"`
		}
		log := decode[page[entry]](t, b.request(t, http.MethodGet, "/v1/admin/audit-log?limit=4", ""))
		require.Equal(t, []entry{
			{Action: "webhook_endpoint.delete", SubjectID: created.ID, Details: map[string]any{"url": "https://example.com/hooks", "deliveries_deleted": 0.0}},
			{Action: "webhook_endpoint.rotate_secret", SubjectID: created.ID, Details: map[string]any{}},
			{Action: "webhook_endpoint.update", SubjectID: created.ID, Details: map[string]any{"enabled": false}},
			{Action: "webhook_endpoint.create", SubjectID: created.ID, Details: map[string]any{"url": "https://example.com/hooks", "event_types": []any{"license.issued"}}},
		}, log.Items)
	})

	t.Run("Idempotent", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		body := `{"url":"https://example.com/hooks","event_types":["license.issued"]}`
		first := b.request(t, http.MethodPost, "/v1/admin/webhook-endpoints", body, "Idempotency-Key", "create-hook-1")
		require.Equal(t, http.StatusCreated, first.status)
		again := b.request(t, http.MethodPost, "/v1/admin/webhook-endpoints", body, "Idempotency-Key", "create-hook-1")
		require.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
		require.Equal(t, decode[webhookEndpoint](t, first), decode[webhookEndpoint](t, again))
		require.Len(t, decode[page[webhookEndpoint]](t, b.request(t, http.MethodGet, "/v1/admin/webhook-endpoints", "")).Items, 1)
	})
}

func TestWebhookDeliveries(t *testing.T) {
	t.Parallel()

	t.Run("EmitCreatesOneDeliveryPerSubscribedEnabledEndpoint", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		a := b.createEndpoint(t, "https://a.example/hooks", "license.issued", "license.revoked")
		c := b.createEndpoint(t, "https://c.example/hooks", "license.issued")
		disabled := b.createEndpoint(t, "https://d.example/hooks", "license.issued")
		b.request(t, http.MethodPatch, "/v1/admin/webhook-endpoints/"+disabled.ID, `{"enabled":false}`)
		b.createEndpoint(t, "https://e.example/hooks", "machine.activated")

		b.emit(t, core.EventLicenseIssued)

		list := b.deliveries(t, "")
		require.Len(t, list.Items, 2)
		endpoints := []string{list.Items[0].EndpointID, list.Items[1].EndpointID}
		require.ElementsMatch(t, []string{a.ID, c.ID}, endpoints)
		require.Equal(t, list.Items[0].EventID, list.Items[1].EventID)
		for _, d := range list.Items {
			require.Equal(t, "pending", d.State)
			require.Equal(t, "license.issued", d.EventType)
			require.Zero(t, d.Attempts)
			require.NotNil(t, d.NextAttemptAt, "due at once")
			require.Equal(t, 1, b.deliverJobs(t, d.EndpointID), "one webhook.deliver job per endpoint, in the same transaction")
		}
		b.emit(t, core.EventLicenseIssued)
		require.Len(t, b.deliveries(t, "").Items, 4)
		require.Equal(t, 1, b.deliverJobs(t, a.ID), "a second event leaves one job per endpoint")
		require.Equal(t, 1, b.deliverJobs(t, c.ID))
		require.Zero(t, b.deliverJobs(t, disabled.ID))
	})

	t.Run("ListFiltersNewestFirst", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		a := b.createEndpoint(t, "https://a.example/hooks", "license.issued", "license.revoked")
		c := b.createEndpoint(t, "https://c.example/hooks", "license.issued")
		b.emit(t, core.EventLicenseIssued)
		b.emit(t, core.EventLicenseRevoked)
		b.emit(t, core.EventLicenseIssued)

		all := b.deliveries(t, "")
		require.Len(t, all.Items, 5)
		var ids []string
		for _, d := range all.Items {
			ids = append(ids, d.ID)
		}
		require.IsDecreasing(t, ids, "newest first")

		ofA := b.deliveries(t, "?endpoint_id="+a.ID)
		require.Len(t, ofA.Items, 3)
		require.Equal(t, []string{"license.issued", "license.revoked", "license.issued"},
			[]string{ofA.Items[0].EventType, ofA.Items[1].EventType, ofA.Items[2].EventType})
		require.Len(t, b.deliveries(t, "?endpoint_id="+c.ID).Items, 2)

		b.finish(t, ofA.Items[1].ID, sql.DeliveryStateDead)
		b.finish(t, ofA.Items[2].ID, sql.DeliveryStateSucceeded)
		dead := b.deliveries(t, "?state=dead")
		require.Len(t, dead.Items, 1)
		require.Equal(t, ofA.Items[1].ID, dead.Items[0].ID)
		require.Len(t, b.deliveries(t, "?state=pending").Items, 3)
		require.Len(t, b.deliveries(t, "?state=succeeded&endpoint_id="+a.ID).Items, 1)
		require.Empty(t, b.deliveries(t, "?state=succeeded&endpoint_id="+c.ID).Items)

		var seen []string
		cursor := ""
		for {
			p := b.deliveries(t, "?limit=2&after="+cursor)
			for _, d := range p.Items {
				seen = append(seen, d.ID)
			}
			if p.NextCursor == "" {
				break
			}
			cursor = p.NextCursor
		}
		require.Equal(t, ids, seen)

		requireProblem(t, b.request(t, http.MethodGet, "/v1/admin/webhook-deliveries?state=lost", ""), http.StatusUnprocessableEntity)
		requireProblem(t, b.request(t, http.MethodGet, "/v1/admin/webhook-deliveries?endpoint_id=nope", ""), http.StatusUnprocessableEntity)
	})

	t.Run("GetShowsAttemptsAndLastOutcome", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		b.createEndpoint(t, "https://a.example/hooks", "license.revoked")
		b.emit(t, core.EventLicenseRevoked)
		id := b.deliveries(t, "").Items[0].ID
		b.clock.Advance(time.Minute)
		b.finish(t, id, sql.DeliveryStateDead)

		res := b.request(t, http.MethodGet, "/v1/admin/webhook-deliveries/"+id, "")
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		got := decode[webhookDelivery](t, res)
		require.Equal(t, "dead", got.State)
		require.Equal(t, "license.revoked", got.EventType)
		require.NotEmpty(t, got.EventID)
		require.Equal(t, 1, got.Attempts)
		require.Equal(t, new(503), got.LastStatus)
		require.Equal(t, new("HTTP 503"), got.LastError)
		require.Equal(t, new("2026-01-15T12:01:00Z"), got.LastAttemptAt)
		require.Equal(t, new("2026-01-15T12:01:00Z"), got.FinishedAt)

		requireProblem(t, b.request(t, http.MethodGet, "/v1/admin/webhook-deliveries/"+uuid.NewString(), ""), http.StatusNotFound)
	})

	t.Run("Retry", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		endpoint := b.createEndpoint(t, "https://a.example/hooks", "license.issued")
		b.emit(t, core.EventLicenseIssued)
		b.emit(t, core.EventLicenseIssued)
		items := b.deliveries(t, "").Items
		dead, pending := items[0].ID, items[1].ID
		b.finish(t, dead, sql.DeliveryStateDead)
		b.completeDeliverJobs(t, endpoint.ID)
		b.clock.Advance(time.Hour)

		res := b.request(t, http.MethodPost, "/v1/admin/webhook-deliveries/"+dead+"/retry", "")
		require.Equal(t, http.StatusAccepted, res.status, "body: %s", res.body)
		retried := decode[webhookDelivery](t, res)
		require.Equal(t, "pending", retried.State)
		require.Nil(t, retried.FinishedAt)
		require.Equal(t, new("2026-01-15T13:00:00Z"), retried.NextAttemptAt, "due now")
		require.Equal(t, 1, retried.Attempts, "earlier attempts are kept")
		require.Equal(t, new("HTTP 503"), retried.LastError, "and the last outcome, until the next attempt")
		require.Equal(t, "license.issued", retried.EventType)
		require.Equal(t, 1, b.deliverJobs(t, endpoint.ID), "the endpoint's job, enqueued in the request's transaction")

		res = b.request(t, http.MethodPost, "/v1/admin/webhook-deliveries/"+pending+"/retry", "")
		require.Equal(t, http.StatusAccepted, res.status, "a pending delivery is made due now: body: %s", res.body)
		require.Equal(t, 1, b.deliverJobs(t, endpoint.ID), "the live job sends it too")
		b.finish(t, pending, sql.DeliveryStateSucceeded)
		p := requireCode(t, b.request(t, http.MethodPost, "/v1/admin/webhook-deliveries/"+pending+"/retry", ""), http.StatusConflict, api.CodeWebhookDeliveryDone)
		require.Contains(t, p.Detail, "already succeeded; only dead or pending deliveries can be retried")

		b.finish(t, dead, sql.DeliveryStateDead)
		b.completeDeliverJobs(t, endpoint.ID)
		b.request(t, http.MethodPatch, "/v1/admin/webhook-endpoints/"+endpoint.ID, `{"enabled":false}`)
		p = requireCode(t, b.request(t, http.MethodPost, "/v1/admin/webhook-deliveries/"+dead+"/retry", ""), http.StatusConflict, api.CodeWebhookEndpointOff)
		require.Contains(t, p.Detail, "is disabled")
		require.Zero(t, b.deliverJobs(t, endpoint.ID), "refused retries enqueue nothing")

		requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/webhook-deliveries/"+uuid.NewString()+"/retry", ""), http.StatusNotFound)

		type entry struct {
			Action    string `json:"action"`
			SubjectID string `json:"subject_id"`
		}
		log := decode[page[entry]](t, b.request(t, http.MethodGet, "/v1/admin/audit-log?limit=3", ""))
		require.Equal(t, entry{Action: "webhook_delivery.retry", SubjectID: pending}, log.Items[1])
		require.Equal(t, entry{Action: "webhook_delivery.retry", SubjectID: dead}, log.Items[2])
	})

	t.Run("DeleteEndpointDeletesItsDeliveries", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		a := b.createEndpoint(t, "https://a.example/hooks", "license.issued")
		c := b.createEndpoint(t, "https://c.example/hooks", "license.issued")
		b.emit(t, core.EventLicenseIssued)
		b.emit(t, core.EventLicenseIssued)

		res := b.request(t, http.MethodDelete, "/v1/admin/webhook-endpoints/"+a.ID, "")
		require.Equal(t, http.StatusNoContent, res.status, "body: %s", res.body)

		left := b.deliveries(t, "")
		require.Len(t, left.Items, 2)
		for _, d := range left.Items {
			require.Equal(t, c.ID, d.EndpointID)
		}
	})

	t.Run("OtherTenantsDeliveryIsNotFound", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		other := factory.Tenant(t, b.db)
		_, err := otherEndpoint(b, other.ID)
		require.NoError(t, err)
		inserter, err := river.NewClient(riverpgxv5.New(nil), &river.Config{})
		require.NoError(t, err)
		require.NoError(t, pg.InTx(context.Background(), b.db, func(tx pgx.Tx) error {
			return core.Emit(context.Background(), tx, core.Step{Jobs: inserter, Now: b.clock.Now()}, core.Event{TenantID: other.ID, Data: eventData(t, core.EventLicenseIssued)})
		}))
		var theirs uuid.UUID
		require.NoError(t, b.db.QueryRow(context.Background(), `SELECT id FROM webhook_deliveries WHERE tenant_id = $1`, other.ID).Scan(&theirs))
		_, err = sql.New().WebhookDeliveryRecordAttempt(context.Background(), b.db, sql.WebhookDeliveryRecordAttemptParams{
			TenantID: other.ID, ID: theirs, AttemptedAt: b.clock.Now(), MaxAttempts: 1, Now: b.clock.Now(),
		})
		require.NoError(t, err)

		requireProblem(t, b.request(t, http.MethodGet, "/v1/admin/webhook-deliveries/"+theirs.String(), ""), http.StatusNotFound)
		requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/webhook-deliveries/"+theirs.String()+"/retry", ""), http.StatusNotFound)
		require.Empty(t, b.deliveries(t, "").Items)
		require.Empty(t, b.deliveries(t, "?state=dead").Items)
	})
}

// eventData returns a payload of eventType, license.issued or license.revoked, about an
// active or revoked licence.
func eventData(t *testing.T, eventType string) core.EventData {
	t.Helper()
	fields := core.LicenseFields{LicenseID: uuid.Must(uuid.NewV7()), Status: sql.LicenseStatusActive}
	switch eventType {
	case core.EventLicenseIssued:
		return core.LicenseIssuedEvent(fields)
	case core.EventLicenseRevoked:
		fields.Status = sql.LicenseStatusRevoked
		return core.LicenseRevokedEvent(fields)
	}
	require.Failf(t, "no test payload", "%q", eventType)
	return nil
}

// otherEndpoint creates an endpoint of tenantID (another tenant than the caller's) at
// https://other.example/hooks, subscribed to license.issued.
func otherEndpoint(b *bundle, tenantID uuid.UUID) (endpoint sql.WebhookEndpoint, err error) {
	err = pg.InTx(context.Background(), b.db, func(tx pgx.Tx) error {
		endpoint, _, err = core.WebhookEndpointCreate(context.Background(), tx, factory.Step(), core.WebhookEndpointCreateParams{
			TenantID: tenantID, MaxEndpoints: core.WebhookMaxEndpointsDefault, URL: "https://other.example/hooks",
			EventTypes: []string{core.EventLicenseIssued},
		})
		return err
	})
	return endpoint, err
}
