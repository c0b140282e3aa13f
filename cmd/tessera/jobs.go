package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/spf13/cobra"

	"github.com/tessera/tessera/api"
	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/internal/pg"
	"github.com/tessera/tessera/sql"
)

// jobStates are River's job states, what --state accepts.
var jobStates = []string{"available", "cancelled", "completed", "discarded", "pending", "retryable", "running", "scheduled"}

// jobFilter is what jobs list filters by.
type jobFilter struct {
	kind, state                                        string
	createdFrom, createdTo, scheduledFrom, scheduledTo string
	limit                                              int
	after                                              int64
}

func newJobsCommand() *cobra.Command {
	jobs := &cobra.Command{
		Use:   "jobs",
		Short: "List, show, retry and cancel background jobs",
		Long: "List, show, retry and cancel River jobs. With --tenant, only that tenant's jobs (those tagged tenant_<id>), as the\n" +
			"tenant's admin API shows them; without it, every job, the sweeps across tenants included. Retries and cancels of a\n" +
			"tenant's job are in that tenant's audit log (actor cli, the operating-system user); those of a job across tenants,\n" +
			"which no tenant's log holds, are logged (level info, message \"job changed by operator\").",
	}
	var tenantSlug string
	var asJSON bool
	jobs.PersistentFlags().StringVar(&tenantSlug, "tenant", "", "only this tenant's jobs (its slug); default: every job")

	var f jobFilter
	list := &cobra.Command{
		Use:   "list [--tenant SLUG] [--kind KIND] [--state STATE] [--created-from T] [--created-to T] [--scheduled-from T] [--scheduled-to T]",
		Short: "List jobs, newest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withJobScope(cmd.Context(), tenantSlug, func(c *cli, tx pgx.Tx, tenantID *uuid.UUID) error {
				rows, err := listJobs(cmd.Context(), tx, tenantID, f)
				if err != nil {
					return err
				}
				more := len(rows) > f.limit
				if more {
					rows = rows[:f.limit]
				}
				if asJSON {
					err = printJSON(cmd.OutOrStdout(), rows)
				} else {
					err = printJobTable(cmd.Context(), tx, cmd.OutOrStdout(), rows)
				}
				if err != nil || !more {
					return err
				}
				_, err = fmt.Fprintf(cmd.ErrOrStderr(), "more jobs: add --after %d\n", rows[len(rows)-1].ID)
				return err
			})
		},
	}
	list.Flags().StringVar(&f.kind, "kind", "", "only jobs of this kind, e.g. webhook.deliver")
	list.Flags().StringVar(&f.state, "state", "", "only jobs in this state: "+strings.Join(jobStates, ", "))
	list.Flags().StringVar(&f.createdFrom, "created-from", "", "only jobs created at or after this time (RFC 3339)")
	list.Flags().StringVar(&f.createdTo, "created-to", "", "only jobs created before this time (RFC 3339)")
	list.Flags().StringVar(&f.scheduledFrom, "scheduled-from", "", "only jobs scheduled at or after this time (RFC 3339)")
	list.Flags().StringVar(&f.scheduledTo, "scheduled-to", "", "only jobs scheduled before this time (RFC 3339)")
	list.Flags().IntVar(&f.limit, "limit", 50, "how many jobs to list (1 to 1000)")
	list.Flags().Int64Var(&f.after, "after", 0, "list the jobs older than this job id (the next page)")

	show := &cobra.Command{
		Use:   "show [--tenant SLUG] JOB_ID",
		Short: "Show one job: its args, attempts and errors",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := jobID(args[0])
			if err != nil {
				return err
			}
			return withJobScope(cmd.Context(), tenantSlug, func(c *cli, tx pgx.Tx, tenantID *uuid.UUID) error {
				job, err := core.JobGet(cmd.Context(), tx, core.JobParams{TenantID: tenantID, ID: id})
				if err != nil {
					return err
				}
				if asJSON {
					return printJSON(cmd.OutOrStdout(), []sql.RiverJob{job})
				}
				return printJob(cmd.Context(), tx, cmd.OutOrStdout(), job)
			})
		},
	}

	retry := &cobra.Command{
		Use:   "retry [--tenant SLUG] JOB_ID",
		Short: "Make a job available to run again now (not a running or already available one)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return changeJob(cmd, tenantSlug, args[0], jobRetry)
		},
	}
	cancel := &cobra.Command{
		Use:   "cancel [--tenant SLUG] JOB_ID",
		Short: "Cancel a job that has not finished (a running one stops when its attempt returns)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return changeJob(cmd, tenantSlug, args[0], jobCancel)
		},
	}
	for _, c := range []*cobra.Command{list, show} {
		c.Flags().BoolVar(&asJSON, "json", false, "print JSON, as the admin API shows jobs")
	}
	jobs.AddCommand(list, show, retry, cancel)
	return jobs
}

// withJobScope runs fn in one transaction with the id of the tenant named by slug, or nil
// (every job) when slug is empty.
func withJobScope(ctx context.Context, slug string, fn func(c *cli, tx pgx.Tx, tenantID *uuid.UUID) error) error {
	if slug != "" {
		return withTenant(ctx, slug, func(c *cli, tx pgx.Tx, tenant sql.Tenant) error { return fn(c, tx, &tenant.ID) })
	}
	return withDB(ctx, func(c *cli) error {
		return pg.InTx(ctx, c.db, func(tx pgx.Tx) error { return fn(c, tx, nil) })
	})
}

// jobID parses a job id argument.
func jobID(arg string) (int64, error) {
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || id < 1 {
		return 0, fmt.Errorf("JOB_ID must be a job's id, a positive number (see tessera jobs list), not %q", arg)
	}
	return id, nil
}

// jobChange is a change an operator makes to a job: core.JobRetry or core.JobCancel, and
// the word the command says it with.
type jobChange struct {
	step func(ctx context.Context, tx pgx.Tx, st core.Step, p core.JobParams) (sql.RiverJob, error)
	done string
}

var (
	jobRetry  = jobChange{step: core.JobRetry, done: "retried"}
	jobCancel = jobChange{step: core.JobCancel, done: "cancelled"}
)

// changeJob makes change to the job arg names, in the scope of tenantSlug, and says what it
// did. A job across tenants, in no tenant's audit log, is logged instead.
func changeJob(cmd *cobra.Command, tenantSlug, arg string, change jobChange) error {
	id, err := jobID(arg)
	if err != nil {
		return err
	}
	return withJobScope(cmd.Context(), tenantSlug, func(c *cli, tx pgx.Tx, tenantID *uuid.UUID) error {
		st := c.step(nil)
		job, err := change.step(cmd.Context(), tx, st, core.JobParams{TenantID: tenantID, ID: id})
		if err != nil {
			return err
		}
		owner, err := jobOwner(cmd.Context(), tx, job)
		if err != nil {
			return err
		}
		if owner == "" {
			owner = "across tenants"
			c.log.Info("job changed by operator", "action", change.done, "job_id", job.ID, "kind", job.Kind, "state", job.State,
				"actor_type", st.Actor.Type, "actor_id", st.Actor.ID)
		}
		_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s job %d (%s, %s): now %s\n", change.done, job.ID, job.Kind, owner, job.State)
		return err
	})
}

// listJobs returns up to f.limit+1 jobs of tenantID (every job when nil), newest first.
func listJobs(ctx context.Context, tx pgx.Tx, tenantID *uuid.UUID, f jobFilter) ([]sql.RiverJob, error) {
	if f.limit < 1 || f.limit > 1000 {
		return nil, errors.New("--limit must be between 1 and 1000")
	}
	if f.after < 0 {
		return nil, errors.New("--after must be a job id, a positive number")
	}
	p := sql.JobListAllTenantsParams{RowLimit: int32(f.limit + 1)}
	if f.after > 0 {
		p.After = &f.after
	}
	if f.kind != "" {
		p.Kind = &f.kind
	}
	if f.state != "" {
		if !slices.Contains(jobStates, f.state) {
			return nil, fmt.Errorf("--state must be one of %s, not %q", strings.Join(jobStates, ", "), f.state)
		}
		state := sql.RiverJobState(f.state)
		p.State = &state
	}
	for _, t := range []struct {
		flag, value string
		into        **time.Time
	}{
		{"--created-from", f.createdFrom, &p.CreatedFrom}, {"--created-to", f.createdTo, &p.CreatedTo},
		{"--scheduled-from", f.scheduledFrom, &p.ScheduledFrom}, {"--scheduled-to", f.scheduledTo, &p.ScheduledTo},
	} {
		if t.value == "" {
			continue
		}
		at, err := time.Parse(time.RFC3339, t.value)
		if err != nil {
			return nil, fmt.Errorf("%s must be an RFC 3339 time like 2026-01-02T15:04:05Z: %w", t.flag, err)
		}
		*t.into = &at
	}
	if tenantID == nil {
		return sql.New().JobListAllTenants(ctx, tx, p)
	}
	return sql.New().JobList(ctx, tx, sql.JobListParams{
		TenantID: *tenantID, After: p.After, Kind: p.Kind, State: p.State, CreatedFrom: p.CreatedFrom, CreatedTo: p.CreatedTo,
		ScheduledFrom: p.ScheduledFrom, ScheduledTo: p.ScheduledTo, RowLimit: p.RowLimit,
	})
}

// jobOwner returns the slug of the tenant job belongs to, or "" for a job across tenants.
func jobOwner(ctx context.Context, tx pgx.Tx, job sql.RiverJob) (string, error) {
	tenantID, err := core.JobTenant(job)
	if err != nil || tenantID == nil {
		return "", err
	}
	tenant, err := sql.New().TenantGet(ctx, tx, *tenantID)
	if err != nil {
		return "", fmt.Errorf("tenant %s of job %d: %w", tenantID, job.ID, err)
	}
	return tenant.Slug, nil
}

// printJobTable prints jobs as a table, one line each.
func printJobTable(ctx context.Context, tx pgx.Tx, out io.Writer, jobs []sql.RiverJob) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tKIND\tSTATE\tATTEMPT\tTENANT\tCREATED\tSCHEDULED")
	slugs := map[string]string{}
	for _, j := range jobs {
		tenantID, err := core.JobTenant(j)
		if err != nil {
			return err
		}
		tenant := "-"
		if tenantID != nil {
			if _, ok := slugs[tenantID.String()]; !ok {
				if slugs[tenantID.String()], err = jobOwner(ctx, tx, j); err != nil {
					return err
				}
			}
			tenant = slugs[tenantID.String()]
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%d/%d\t%s\t%s\t%s\n", j.ID, j.Kind, j.State, j.Attempt, j.MaxAttempts, tenant,
			j.CreatedAt.UTC().Format(time.RFC3339), j.ScheduledAt.UTC().Format(time.RFC3339))
	}
	return w.Flush()
}

// printJob prints one job, a field a line, with its args and the errors of its attempts.
func printJob(ctx context.Context, tx pgx.Tx, out io.Writer, j sql.RiverJob) error {
	owner, err := jobOwner(ctx, tx, j)
	if err != nil {
		return err
	}
	if owner == "" {
		owner = "- (across tenants)"
	}
	job, err := api.JobFrom(j)
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	at := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.UTC().Format(time.RFC3339)
	}
	for _, field := range [][2]string{
		{"ID", strconv.FormatInt(job.ID, 10)}, {"Kind", job.Kind}, {"State", job.State}, {"Tenant", owner},
		{"Queue", fmt.Sprintf("%s (priority %d)", job.Queue, job.Priority)}, {"Attempt", fmt.Sprintf("%d of %d", job.Attempt, job.MaxAttempts)},
		{"Args", string(j.Args)}, {"Tags", strings.Join(job.Tags, " ")},
		{"Created", at(&job.CreatedAt)}, {"Scheduled", at(&job.ScheduledAt)}, {"Attempted", at(job.AttemptedAt)}, {"Finalized", at(job.FinalizedAt)},
	} {
		fmt.Fprintf(w, "%s:\t%s\n", field[0], field[1])
	}
	for _, e := range job.Errors {
		fmt.Fprintf(w, "Error:\tattempt %d at %s: %s\n", e.Attempt, e.At.UTC().Format(time.RFC3339), e.Error)
	}
	return w.Flush()
}

// printJSON prints jobs as the admin API shows them, one JSON object a line.
func printJSON(out io.Writer, jobs []sql.RiverJob) error {
	enc := json.NewEncoder(out)
	for _, j := range jobs {
		job, err := api.JobFrom(j)
		if err != nil {
			return err
		}
		if err := enc.Encode(job); err != nil {
			return err
		}
	}
	return nil
}
