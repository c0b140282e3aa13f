-- +goose Up
-- When a sandbox's next lapse falls due (ClockNextDue) is, per policy, its grace days after
-- the earliest unpaid period end of the policy's past_due subscriptions: one probe of this
-- index per policy, where subscriptions_tenant_past_due_idx made it read every past_due
-- subscription of the tenant at every instant of an advance.
CREATE INDEX subscriptions_tenant_policy_past_due_idx ON subscriptions (tenant_id, policy_id, current_period_end)
    WHERE status = 'past_due';
DROP INDEX subscriptions_tenant_past_due_idx;

-- +goose Down
CREATE INDEX subscriptions_tenant_past_due_idx ON subscriptions (tenant_id, current_period_end)
    WHERE status = 'past_due';
DROP INDEX subscriptions_tenant_policy_past_due_idx;
