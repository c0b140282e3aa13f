package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/sql"
)

// JobClient is what the API asks of River, in the request's transaction: enqueue jobs, and
// retry or cancel one (core.JobClient, which the request's core steps are given). A
// *river.Client[pgx.Tx]; an insert-only one is enough.
type JobClient = core.JobClient

// Job is one of the tenant's River jobs: the background work Tessera does for it.
type Job struct {
	ID          int64          `json:"id" example:"4211"`
	Kind        string         `json:"kind" example:"webhook.deliver" doc:"What the job does, as domain.action."`
	State       string         `json:"state" enum:"available,cancelled,completed,discarded,pending,retryable,running,scheduled" doc:"River's state: available (waiting for a worker), scheduled (waiting for scheduled_at), running, retryable (failed, waiting for its next attempt), completed, cancelled, discarded (failed its last attempt), pending (not used by Tessera)."`
	Queue       string         `json:"queue" example:"default"`
	Priority    int32          `json:"priority" example:"1" doc:"1 is the highest."`
	Attempt     int32          `json:"attempt" example:"1" doc:"Attempts made so far."`
	MaxAttempts int32          `json:"max_attempts" example:"25" doc:"The most attempts made before the job is discarded."`
	Args        map[string]any `json:"args" doc:"The job's arguments: ids, never copies of rows."`
	Tags        []string       `json:"tags" nullable:"false" doc:"River tags: tenant_<tenant id> on every job of a tenant."`
	Errors      []JobError     `json:"errors" nullable:"false" doc:"The errors of failed attempts, oldest first."`
	CreatedAt   time.Time      `json:"created_at"`
	ScheduledAt time.Time      `json:"scheduled_at" doc:"When the job runs (or ran) next."`
	AttemptedAt *time.Time     `json:"attempted_at,omitempty" doc:"When its last attempt started."`
	FinalizedAt *time.Time     `json:"finalized_at,omitempty" doc:"When it completed, was cancelled or was discarded."`
}

// JobError is the error of one failed attempt of a job.
type JobError struct {
	Attempt int32     `json:"attempt" example:"1"`
	At      time.Time `json:"at"`
	Error   string    `json:"error" example:"create invoice: provider unavailable"`
}

// JobFrom converts a River job row, whose args and errors River wrote as JSON: what the API
// and `tessera jobs ... --json` show.
func JobFrom(j sql.RiverJob) (Job, error) {
	out := Job{
		ID: j.ID, Kind: j.Kind, State: string(j.State), Queue: j.Queue, Priority: int32(j.Priority),
		Attempt: int32(j.Attempt), MaxAttempts: int32(j.MaxAttempts), Tags: j.Tags, Errors: make([]JobError, 0, len(j.Errors)),
		CreatedAt: j.CreatedAt, ScheduledAt: j.ScheduledAt, AttemptedAt: j.AttemptedAt, FinalizedAt: j.FinalizedAt,
	}
	if err := json.Unmarshal(j.Args, &out.Args); err != nil {
		return Job{}, fmt.Errorf("job %d: decode args: %w", j.ID, err)
	}
	for _, raw := range j.Errors {
		var e JobError
		if err := json.Unmarshal(raw, &e); err != nil {
			return Job{}, fmt.Errorf("job %d: decode error: %w", j.ID, err)
		}
		out.Errors = append(out.Errors, e)
	}
	return out, nil
}

// JobListInput filters and pages jobs.
type JobListInput struct {
	Limit         int       `query:"limit" minimum:"1" maximum:"200" default:"50" doc:"Maximum number of items to return."`
	After         string    `query:"after" pattern:"^[1-9][0-9]{0,17}$" doc:"Opaque cursor: the next_cursor of the previous page."`
	Kind          string    `query:"kind" maxLength:"128" example:"webhook.deliver" doc:"Only jobs of this kind."`
	State         string    `query:"state" enum:"available,cancelled,completed,discarded,pending,retryable,running,scheduled" doc:"Only jobs in this state."`
	CreatedFrom   time.Time `query:"created_from" doc:"Only jobs created at or after this time."`
	CreatedTo     time.Time `query:"created_to" doc:"Only jobs created before this time."`
	ScheduledFrom time.Time `query:"scheduled_from" doc:"Only jobs scheduled at or after this time."`
	ScheduledTo   time.Time `query:"scheduled_to" doc:"Only jobs scheduled before this time."`
}

// JobIDInput names one job.
type JobIDInput struct {
	ID int64 `path:"id" minimum:"1" example:"4211"`
}

// JobOutput is one job.
type JobOutput struct {
	Body Job
}

// JobListOutput is a page of jobs.
type JobListOutput struct {
	Body Page[Job]
}

// optionalTime is an optional time query parameter: nil when it was not given.
func optionalTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// optionalString is an optional string query parameter: nil when it was not given.
func optionalString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (s *Server) registerJobs() {
	huma.Register(s.api, adminOperation(jobListOperation), s.jobList)
	huma.Register(s.api, adminOperation(jobGetOperation), s.jobGet)
	huma.Register(s.api, adminOperation(jobRetryOperation), s.jobRetry)
	huma.Register(s.api, adminOperation(jobCancelOperation), s.jobCancel)
}

var jobTags = []string{"Jobs"}

// jobChangeMeaning ends the description of a retry and a cancel.
const jobChangeMeaning = " What a retry or a cancel means for each kind of job is in the README (Background jobs)."

var jobListOperation = huma.Operation{
	OperationID: "job-list",
	Method:      http.MethodGet,
	Path:        "/v1/admin/jobs",
	Summary:     "List the tenant's background jobs, newest first",
	Description: "The tenant's River jobs (those tagged tenant_<tenant id>), filtered by kind, state, and creation and scheduled time " +
		"(from inclusive, to exclusive). Jobs across tenants (the periodic sweeps) are not listed; an operator sees them with `tessera jobs list`.",
	Tags: jobTags,
}

// jobList pages through the tenant's River jobs, newest first, filtered.
func (s *Server) jobList(ctx context.Context, in *JobListInput) (*JobListOutput, error) {
	_, fetch := PageParams{Limit: in.Limit}.cursor()
	params := sql.JobListParams{
		TenantID: tenantID(ctx), Kind: optionalString(in.Kind), RowLimit: fetch,
		CreatedFrom: optionalTime(in.CreatedFrom), CreatedTo: optionalTime(in.CreatedTo),
		ScheduledFrom: optionalTime(in.ScheduledFrom), ScheduledTo: optionalTime(in.ScheduledTo),
	}
	if after, err := strconv.ParseInt(in.After, 10, 64); err == nil {
		params.After = &after
	}
	if in.State != "" {
		state := sql.RiverJobState(in.State)
		params.State = &state
	}
	rows, err := s.queries.JobList(ctx, s.conn(ctx), params)
	if err != nil {
		return nil, problem(ctx, err)
	}
	return s.jobPage(ctx, rows, fetch)
}

var jobGetOperation = huma.Operation{
	OperationID: "job-get",
	Method:      http.MethodGet,
	Path:        "/v1/admin/jobs/{id}",
	Summary:     "Get one of the tenant's background jobs",
	Description: "Another tenant's job, or a job across tenants, is 404 as a missing one is.",
	Tags:        jobTags,
	Errors:      []int{http.StatusNotFound},
}

// jobGet reads one of the tenant's River jobs.
func (s *Server) jobGet(ctx context.Context, in *JobIDInput) (*JobOutput, error) {
	tenant := tenantID(ctx)
	job, err := core.JobGet(ctx, s.conn(ctx), core.JobParams{TenantID: &tenant, ID: in.ID})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return s.jobOutput(ctx, job)
}

var jobRetryOperation = huma.Operation{
	OperationID: "job-retry",
	Method:      http.MethodPost,
	Path:        "/v1/admin/jobs/{id}/retry",
	Summary:     "Retry one of the tenant's background jobs now",
	Description: "Makes the job available to run at once (given one more attempt if it had used them all), whatever its state but running " +
		"or already available, which are 409, as is a unique job while an identical one waits or runs (that one does the work); a retried completed job " +
		"runs again, and finds its work done. The retry is in the tenant's audit log " +
		"(job.retry). Another tenant's job, or a job across tenants, is 404." + jobChangeMeaning,
	Tags:   jobTags,
	Errors: []int{http.StatusNotFound, http.StatusConflict},
}

// jobRetry makes one of the tenant's River jobs available to run again now.
func (s *Server) jobRetry(ctx context.Context, in *JobIDInput) (*JobOutput, error) {
	tenant := tenantID(ctx)
	job, err := core.JobRetry(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.JobParams{TenantID: &tenant, ID: in.ID})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return s.jobOutput(ctx, job)
}

var jobCancelOperation = huma.Operation{
	OperationID: "job-cancel",
	Method:      http.MethodPost,
	Path:        "/v1/admin/jobs/{id}/cancel",
	Summary:     "Cancel one of the tenant's background jobs",
	Description: "A job waiting to run (available, scheduled, retryable) is cancelled at once and never runs; a running job is asked to stop " +
		"and stays running until its attempt returns: cancelled if it fails, completed if it succeeds. A finished job (completed, cancelled, " +
		"discarded) is 409. The cancel is in the tenant's audit log (job.cancel). Another tenant's job, or a job across tenants, is 404." + jobChangeMeaning,
	Tags:   jobTags,
	Errors: []int{http.StatusNotFound, http.StatusConflict},
}

// jobCancel cancels one of the tenant's River jobs that has not finished.
func (s *Server) jobCancel(ctx context.Context, in *JobIDInput) (*JobOutput, error) {
	tenant := tenantID(ctx)
	job, err := core.JobCancel(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.JobParams{TenantID: &tenant, ID: in.ID})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return s.jobOutput(ctx, job)
}

// jobPage converts fetched jobs (up to limit+1) into a page; the cursor is a job id.
func (s *Server) jobPage(ctx context.Context, rows []sql.RiverJob, fetch int32) (*JobListOutput, error) {
	jobs := make([]Job, len(rows))
	for i, row := range rows {
		var err error
		if jobs[i], err = JobFrom(row); err != nil {
			return nil, problem(ctx, err)
		}
	}
	identity := func(j Job) Job { return j }
	return &JobListOutput{Body: pageBy(jobs, fetch, identity, func(j Job) string { return strconv.FormatInt(j.ID, 10) })}, nil
}

// jobOutput converts one job.
func (s *Server) jobOutput(ctx context.Context, row sql.RiverJob) (*JobOutput, error) {
	job, err := JobFrom(row)
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &JobOutput{Body: job}, nil
}
