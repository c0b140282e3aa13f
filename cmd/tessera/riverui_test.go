package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivertype"
	"github.com/stretchr/testify/require"

	"github.com/tessera/tessera/internal/browser"
	"github.com/tessera/tessera/internal/clock"
	"github.com/tessera/tessera/internal/jobargs"
)

// testOperatorPassword signs the River UI tests in.
const testOperatorPassword = "correct horse battery staple"

// startRiverUIServer starts a server with River UI on and a referral.recompute job of its
// tenant scheduled an hour ahead, so that it waits in the scheduled state to be listed.
func startRiverUIServer(t *testing.T) (*server, *rivertype.JobRow) {
	t.Helper()
	s := startServer(t, func(cfg *Config) { cfg.OperatorPassword = testOperatorPassword })
	inserter, err := river.NewClient(riverpgxv5.New(s.pool), &river.Config{})
	require.NoError(t, err)
	inserted, err := inserter.Insert(t.Context(), jobargs.ReferralRecompute{TenantID: s.tenant.ID},
		&river.InsertOpts{ScheduledAt: clock.System{}.Now().Add(time.Hour)})
	require.NoError(t, err)
	return s, inserted.Job
}

// operatorRequest sends method path signed in as user with password; an empty user sends
// no credentials. header adds headers.
func (s *server) operatorRequest(t *testing.T, method, path, user, password string, body string, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+s.addr+path, strings.NewReader(body))
	require.NoError(t, err)
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := s.send(req)
	require.NoError(t, err)
	return res
}

func TestRiverUIRequiresOperator(t *testing.T) {
	t.Parallel()
	s, _ := startRiverUIServer(t)

	for _, path := range []string{"/riverui", "/riverui/", "/riverui/jobs?state=scheduled", "/riverui/favicon.ico",
		"/riverui/api/jobs?state=scheduled", "/riverui/api/states", "/riverui/no-such-page"} {
		for _, tt := range []struct {
			name, user, password string
		}{
			{name: "NoCredentials"},
			{name: "WrongPassword", user: "operator", password: testOperatorPassword + "x"},
			{name: "WrongUser", user: "admin", password: testOperatorPassword},
			{name: "EmptyPassword", user: "operator"},
		} {
			t.Run(path+"/"+tt.name, func(t *testing.T) {
				t.Parallel()
				res := s.operatorRequest(t, http.MethodGet, path, tt.user, tt.password, "", nil)
				require.Equal(t, http.StatusUnauthorized, res.status, res.body)
				require.Equal(t, `Basic realm="Tessera operators", charset="UTF-8"`, res.header.Get("WWW-Authenticate"))
				require.NotContains(t, res.body, "referral.recompute")
			})
		}
		t.Run(path+"/SignedIn", func(t *testing.T) {
			t.Parallel()
			// /riverui redirects to /riverui/
			res := s.operatorRequest(t, http.MethodGet, path, "operator", testOperatorPassword, "", nil)
			require.Equal(t, http.StatusOK, res.status, res.body)
			require.Empty(t, res.header.Get("WWW-Authenticate"))
		})
	}
	// A bearer admin key is no operator sign-in.
	res, err := s.get("/riverui/api/jobs?state=scheduled")
	require.NoError(t, err)
	require.Equal(t, http.StatusUnauthorized, res.status, res.body)
}

func TestRiverUIListsJobsToOperator(t *testing.T) {
	t.Parallel()
	s, job := startRiverUIServer(t)

	page := s.operatorRequest(t, http.MethodGet, "/riverui/jobs?state=scheduled", "operator", testOperatorPassword, "", nil)
	require.Equal(t, http.StatusOK, page.status, page.body)
	require.Contains(t, page.body, `<div id="root"`)
	require.NotEmpty(t, page.header.Get("X-Request-Id"), "River UI's requests pass through the API's request log")

	res := s.operatorRequest(t, http.MethodGet, "/riverui/api/jobs?state=scheduled", "operator", testOperatorPassword, "", nil)
	require.Equal(t, http.StatusOK, res.status, res.body)
	var list struct {
		Data []struct {
			ID   int64  `json:"id"`
			Kind string `json:"kind"`
			Args string `json:"args"` // River UI sends the JSON as a string
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal([]byte(res.body), &list), res.body)
	require.Len(t, list.Data, 1, res.body)
	require.Equal(t, job.ID, list.Data[0].ID)
	require.Equal(t, "referral.recompute", list.Data[0].Kind)
	require.JSONEq(t, `{"tenant_id": "`+s.tenant.ID.String()+`"}`, list.Data[0].Args, "args are shown")
}

func TestRiverUIRefusesCrossOriginWrites(t *testing.T) {
	t.Parallel()
	s, job := startRiverUIServer(t)
	cancel := `{"ids": ["` + strconv.FormatInt(job.ID, 10) + `"]}`

	// A page of another site posting with the browser's cached credentials.
	res := s.operatorRequest(t, http.MethodPost, "/riverui/api/jobs/cancel", "operator", testOperatorPassword, cancel,
		map[string]string{"Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"})
	require.Equal(t, http.StatusForbidden, res.status, res.body)
	var state string
	require.NoError(t, s.pool.QueryRow(t.Context(), "SELECT state FROM river_job WHERE id = $1", job.ID).Scan(&state))
	require.Equal(t, "scheduled", state)

	// River UI's own page cancels it.
	res = s.operatorRequest(t, http.MethodPost, "/riverui/api/jobs/cancel", "operator", testOperatorPassword, cancel,
		map[string]string{"Content-Type": "application/json", "Sec-Fetch-Site": "same-origin", "Origin": "http://" + s.addr})
	require.Equal(t, http.StatusOK, res.status, res.body)
	require.NoError(t, s.pool.QueryRow(t.Context(), "SELECT state FROM river_job WHERE id = $1", job.ID).Scan(&state))
	require.Equal(t, "cancelled", state)
}

func TestRiverUIOffWithoutPassword(t *testing.T) {
	t.Parallel()
	s := startServer(t)

	for _, path := range []string{"/riverui/", "/riverui/jobs", "/riverui/api/jobs"} {
		res := s.operatorRequest(t, http.MethodGet, path, "operator", testOperatorPassword, "", nil)
		require.Equal(t, http.StatusNotFound, res.status, "%s: %s", path, res.body)
		require.Empty(t, res.header.Get("WWW-Authenticate"))
	}
}

// TestRiverUIRendersJobList draws River UI's list of scheduled jobs in headless Chromium,
// signing in at the browser's prompt as a person does, and finds the job, its kind and its
// args on it. The browser is asked once: it sends the kept credentials with River UI's own
// requests (assets, /riverui/api/...).
func TestRiverUIRendersJobList(t *testing.T) {
	t.Parallel()
	s, job := startRiverUIServer(t)
	url := "http://" + s.addr + "/riverui/jobs?state=scheduled"

	page := browser.Render(t, url, browser.Options{
		SignIn: &browser.Credentials{User: "operator", Password: testOperatorPassword},
		Ready:  fmt.Sprintf(`a[href="/riverui/jobs/%d"]`, job.ID),
	})
	require.Equal(t, []string{url}, page.SignIns, "the browser asked for more than the page")
	require.Empty(t, page.Failed, "no request failed, none went to another origin")
	require.Contains(t, page.HTML, ">referral.recompute<")
	require.Contains(t, page.HTML, `{"tenant_id":"`+s.tenant.ID.String()+`"}`)
}
