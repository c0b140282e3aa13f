-- +goose Up
-- license_machine_limits is the one statement of a licence's effective machine limit: its
-- max_machines plus the referral bonus units its customer earned (referral_rewards primary
-- key; none counts 0). NULL max_machines means unlimited, and so does the limit.
-- MachineActivate refuses an activation past it, and LicenseValidate answers
-- TOO_MANY_MACHINES past it and returns it as the licence's max_machines: the API copies
-- it and adds nothing. Read by a licence's key, (tenant_id, license_id), it reads one
-- licence and one referral_rewards row by their primary keys.
CREATE VIEW license_machine_limits AS
SELECT l.tenant_id, l.id AS license_id, l.max_machines + coalesce(rr.bonus_units, 0) AS max_machines
FROM licenses l
LEFT JOIN referral_rewards rr ON rr.tenant_id = l.tenant_id AND rr.customer_id = l.customer_id;

-- +goose Down
DROP VIEW license_machine_limits;
