package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/factory"
)

type customerEvent struct {
	ID         string    `json:"id"`
	CustomerID string    `json:"customer_id"`
	Type       string    `json:"type"`
	IPHash     *string   `json:"ip_hash"`
	OccurredAt time.Time `json:"occurred_at"`
}

// problemWithErrors is a problem with Huma's per-location errors.
type problemWithErrors struct {
	Detail string `json:"detail"`
	Errors []struct {
		Location string `json:"location"`
		Message  string `json:"message"`
	} `json:"errors"`
}

func TestCustomerEvents(t *testing.T) {
	t.Parallel()

	t.Run("CreateAndList", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := factory.Customer(t, b.db, b.tenant.ID)
		path := "/v1/admin/customers/" + c.ID.String() + "/events"

		res := b.request(t, http.MethodPost, path, `{"type":"registered","ip_hash":"9f86d081884c7d65"}`)
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		registered := decode[customerEvent](t, res)
		require.Equal(t, "registered", registered.Type)
		require.Equal(t, ptr("9f86d081884c7d65"), registered.IPHash)
		require.Equal(t, c.ID.String(), registered.CustomerID)
		require.True(t, registered.OccurredAt.Equal(factory.Now), "occurred_at defaults to the clock's now")

		res = b.request(t, http.MethodPost, path, `{"type":"login","occurred_at":"2026-01-16T08:00:00Z"}`)
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		require.Nil(t, decode[customerEvent](t, res).IPHash)
		b.request(t, http.MethodPost, path, `{"type":"login","occurred_at":"2026-01-14T08:00:00Z"}`)
		b.request(t, http.MethodPost, path, `{"type":"login","occurred_at":"2026-01-17T08:00:00Z"}`)

		all := collect[customerEvent](t, b, path+"?limit=1")
		var got []string
		for _, e := range all {
			got = append(got, e.Type+" "+e.OccurredAt.Format("01-02"))
		}
		require.Equal(t, []string{"login 01-17", "login 01-16", "registered 01-15", "login 01-14"}, got, "most recent first")

		logins := collect[customerEvent](t, b, path+"?limit=2&type=login")
		require.Len(t, logins, 3)
		for _, e := range logins {
			require.Equal(t, "login", e.Type)
		}
		require.Equal(t, "customer_event.create", auditActions(t, b)[0])

		// Another customer's events are its own.
		other := factory.Customer(t, b.db, b.tenant.ID)
		require.Empty(t, decode[page[customerEvent]](t, b.request(t, http.MethodGet, "/v1/admin/customers/"+other.ID.String()+"/events", "")).Items)
	})

	t.Run("Validation", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		path := "/v1/admin/customers/" + factory.Customer(t, b.db, b.tenant.ID).ID.String() + "/events"
		for _, body := range []string{
			`{}`,
			`{"type":"Login"}`,
			`{"type":"1login"}`,
			`{"type":"login","ip_hash":""}`,
			`{"type":"login","ip_hash":"` + strings.Repeat("a", 129) + `"}`,
			`{"type":"login","occurred_at":"soon"}`,
			`{"type":"login","ip":"10.0.0.1"}`,
		} {
			requireProblem(t, b.request(t, http.MethodPost, path, body), http.StatusUnprocessableEntity)
		}
		requireProblem(t, b.request(t, http.MethodGet, path+"?type=Bad", ""), http.StatusUnprocessableEntity)
		requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/customers/"+b.tenant.ID.String()+"/events", `{"type":"login"}`), http.StatusNotFound)
	})

	t.Run("Batch", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		ada := factory.Customer(t, b.db, b.tenant.ID)
		bob := factory.Customer(t, b.db, b.tenant.ID)
		res := b.request(t, http.MethodPost, "/v1/admin/customer-events/batch", fmt.Sprintf(`{"events":[
			{"customer_id":%q,"type":"registered","ip_hash":"aaa"},
			{"customer_id":%q,"type":"registered","ip_hash":"bbb","occurred_at":"2026-01-10T00:00:00Z"},
			{"customer_id":%q,"type":"login"}]}`, ada.ID, bob.ID, ada.ID))
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		require.JSONEq(t, `{"created":3}`, string(res.body))

		adas := decode[page[customerEvent]](t, b.request(t, http.MethodGet, "/v1/admin/customers/"+ada.ID.String()+"/events", ""))
		require.Len(t, adas.Items, 2)
		for _, e := range adas.Items {
			require.True(t, e.OccurredAt.Equal(factory.Now))
		}
		bobs := decode[page[customerEvent]](t, b.request(t, http.MethodGet, "/v1/admin/customers/"+bob.ID.String()+"/events", ""))
		require.Len(t, bobs.Items, 1)
		require.Equal(t, ptr("bbb"), bobs.Items[0].IPHash)
		require.True(t, bobs.Items[0].OccurredAt.Equal(time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)))

		log := decode[page[auditEntry]](t, b.request(t, http.MethodGet, "/v1/admin/audit-log?limit=1", ""))
		require.Equal(t, "customer_event.create_batch", log.Items[0].Action)
		require.Equal(t, float64(3), log.Items[0].Details["count"])
	})

	t.Run("BatchOf1000", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := factory.Customer(t, b.db, b.tenant.ID)
		row := fmt.Sprintf(`{"customer_id":%q,"type":"login","ip_hash":"h"}`, c.ID)
		res := b.request(t, http.MethodPost, "/v1/admin/customer-events/batch", `{"events":[`+strings.Repeat(row+",", 999)+row+`]}`)
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		require.JSONEq(t, `{"created":1000}`, string(res.body))

		res = b.request(t, http.MethodPost, "/v1/admin/customer-events/batch", `{"events":[`+strings.Repeat(row+",", 1000)+row+`]}`)
		requireProblem(t, res, http.StatusUnprocessableEntity)
		requireProblem(t, b.request(t, http.MethodPost, "/v1/admin/customer-events/batch", `{"events":[]}`), http.StatusUnprocessableEntity)
		require.Len(t, collect[customerEvent](t, b, "/v1/admin/customers/"+c.ID.String()+"/events?limit=200"), 1000)
	})

	t.Run("BatchWithBadRowsWritesNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t)
		c := factory.Customer(t, b.db, b.tenant.ID)
		theirs := factory.Customer(t, b.db, factory.Tenant(t, b.db).ID)
		unknown := factory.Tenant(t, b.db).ID

		res := b.request(t, http.MethodPost, "/v1/admin/customer-events/batch", fmt.Sprintf(`{"events":[
			{"customer_id":%q,"type":"login"},
			{"customer_id":%q,"type":"login"},
			{"customer_id":%q,"type":"login"},
			{"customer_id":%q,"type":"login"}]}`, c.ID, theirs.ID, c.ID, unknown))
		requireProblem(t, res, http.StatusUnprocessableEntity)
		p := decode[problemWithErrors](t, res)
		require.Equal(t, "2 of 4 events are invalid; nothing was recorded", p.Detail)
		require.Len(t, p.Errors, 2)
		require.Equal(t, "body.events[1].customer_id", p.Errors[0].Location)
		require.Equal(t, "customer "+theirs.ID.String()+" not found", p.Errors[0].Message)
		require.Equal(t, "body.events[3].customer_id", p.Errors[1].Location)

		// A malformed field is reported by row too.
		res = b.request(t, http.MethodPost, "/v1/admin/customer-events/batch", fmt.Sprintf(`{"events":[
			{"customer_id":%q,"type":"login"},
			{"customer_id":%q,"type":"Not A Type"},
			{"customer_id":%q,"type":"login","ip_hash":""}]}`, c.ID, c.ID, c.ID))
		requireProblem(t, res, http.StatusUnprocessableEntity)
		p = decode[problemWithErrors](t, res)
		var locations []string
		for _, e := range p.Errors {
			locations = append(locations, e.Location)
		}
		require.ElementsMatch(t, []string{"body.events[1].type", "body.events[2].ip_hash"}, locations)

		require.Empty(t, decode[page[customerEvent]](t, b.request(t, http.MethodGet, "/v1/admin/customers/"+c.ID.String()+"/events", "")).Items,
			"nothing was written")
		require.NotContains(t, auditActions(t, b), "customer_event.create_batch")
	})
}
