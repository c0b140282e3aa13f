package api_test

import (
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/factory"
	"github.com/tessera/tessera/sql"
)

type machine struct {
	ID            string  `json:"id"`
	Fingerprint   string  `json:"fingerprint"`
	Name          *string `json:"name"`
	DeactivatedAt *string `json:"deactivated_at"`
}

func TestMachines(t *testing.T) {
	t.Parallel()
	// setupLicense returns a bundle with a licence of its tenant for up to 2 machines.
	setupLicense := func(t *testing.T) (*bundle, sql.License) {
		t.Helper()
		b := setup(t)
		policy := factory.Policy(t, b.db, b.tenant.ID, factory.PolicyMaxMachines(2))
		return b, factory.License(t, b.db, b.tenant.ID, policy.ID, factory.Customer(t, b.db, b.tenant.ID).ID)
	}

	t.Run("ActivateListDeactivate", func(t *testing.T) {
		t.Parallel()
		b, l := setupLicense(t)
		path := "/v1/admin/licenses/" + l.ID.String() + "/machines"

		res := b.request(t, http.MethodPost, path, `{"fingerprint":"fp-a","name":"laptop"}`)
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		a := decode[machine](t, res)
		require.Equal(t, "laptop", *a.Name)

		res = b.request(t, http.MethodPost, path, `{"fingerprint":"fp-a"}`)
		require.Equal(t, http.StatusOK, res.status, "an active fingerprint activates once")
		require.Equal(t, a.ID, decode[machine](t, res).ID)

		require.Equal(t, http.StatusCreated, b.request(t, http.MethodPost, path, `{"fingerprint":"fp-b"}`).status)
		p := requireCode(t, b.request(t, http.MethodPost, path, `{"fingerprint":"fp-c"}`), http.StatusConflict, api.CodeMachineLimit)
		require.Contains(t, p.Detail, "all 2 machine slots")

		require.Len(t, decode[page[machine]](t, b.request(t, http.MethodGet, path, "")).Items, 2)
		res = b.request(t, http.MethodDelete, path+"/"+a.ID, "")
		require.Equal(t, http.StatusOK, res.status)
		require.NotNil(t, decode[machine](t, res).DeactivatedAt)
		requireProblem(t, b.request(t, http.MethodDelete, path+"/"+a.ID, ""), http.StatusNotFound)

		require.Equal(t, http.StatusCreated, b.request(t, http.MethodPost, path, `{"fingerprint":"fp-c"}`).status, "the freed slot is taken")
		require.Len(t, decode[page[machine]](t, b.request(t, http.MethodGet, path, "")).Items, 2)
		require.Len(t, decode[page[machine]](t, b.request(t, http.MethodGet, path+"?include_inactive=true", "")).Items, 3)
		require.Equal(t, 3, b.eventCount(t, "machine.activated"))
		require.Equal(t, 1, b.eventCount(t, "machine.deactivated"))
	})

	t.Run("InactiveLicenceRefuses", func(t *testing.T) {
		t.Parallel()
		b, l := setupLicense(t)
		b.request(t, http.MethodPost, "/v1/admin/licenses/"+l.ID.String()+"/suspend", "")
		p := requireCode(t, b.request(t, http.MethodPost, "/v1/admin/licenses/"+l.ID.String()+"/machines", `{"fingerprint":"x"}`), http.StatusConflict, api.CodeLicenseStatus)
		require.Contains(t, p.Detail, "suspended")
	})

	t.Run("Buyer", func(t *testing.T) {
		t.Parallel()
		b, l := setupLicense(t)
		res := b.request(t, http.MethodPost, "/v1/machines/activate", fmt.Sprintf(`{"key":%q,"fingerprint":"fp-1"}`, l.Key), "Authorization", "")
		require.Equal(t, http.StatusCreated, res.status, "body: %s", res.body)
		res = b.request(t, http.MethodPost, "/v1/machines/deactivate", fmt.Sprintf(`{"key":%q,"fingerprint":"fp-1"}`, l.Key), "Authorization", "")
		require.Equal(t, http.StatusOK, res.status, "body: %s", res.body)
		requireProblem(t, b.request(t, http.MethodPost, "/v1/machines/deactivate", fmt.Sprintf(`{"key":%q,"fingerprint":"fp-1"}`, l.Key), "Authorization", ""), http.StatusNotFound)
		requireCode(t, b.request(t, http.MethodPost, "/v1/machines/activate", `{"key":"forged","fingerprint":"fp-1"}`, "Authorization", ""), http.StatusUnauthorized, api.CodeLicenseKeyInvalid)
		requireProblem(t, b.request(t, http.MethodPost, "/v1/machines/deactivate", `{"key":"forged","fingerprint":"fp-1"}`, "Authorization", ""), http.StatusUnauthorized)
		requireProblem(t, b.request(t, http.MethodPost, "/v1/machines/activate", fmt.Sprintf(`{"key":%q,"fingerprint":""}`, l.Key), "Authorization", ""), http.StatusUnprocessableEntity)
	})
}

// TestMachineLastSlotRace races activations of different machines for the last free slot of
// a licence on separate connections, round after round: each time exactly one wins.
func TestMachineLastSlotRace(t *testing.T) {
	t.Parallel()
	b, srv := setupServer(t)
	policy := factory.Policy(t, b.db, b.tenant.ID, factory.PolicyMaxMachines(3))
	customer := factory.Customer(t, b.db, b.tenant.ID)

	for round := range 15 {
		l := factory.License(t, b.db, b.tenant.ID, policy.ID, customer.ID)
		path := "/v1/admin/licenses/" + l.ID.String() + "/machines"
		for _, fp := range []string{"taken-1", "taken-2"} {
			require.Equal(t, http.StatusCreated, b.send(t, srv, http.MethodPost, path, fmt.Sprintf(`{"fingerprint":%q}`, fp)).status)
		}
		const n = 8
		statuses := make([]int, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				statuses[i] = b.send(t, srv, http.MethodPost, path, fmt.Sprintf(`{"fingerprint":"racer-%d"}`, i)).status
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for _, status := range statuses {
			require.Contains(t, []int{http.StatusCreated, http.StatusConflict}, status)
			if status == http.StatusCreated {
				won++
			}
		}
		require.Equal(t, 1, won, "round %d", round)
		require.Len(t, decode[page[machine]](t, b.send(t, srv, http.MethodGet, path, "")).Items, 3)
	}
}
