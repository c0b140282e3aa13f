package core

import (
	"time"

	"github.com/google/uuid"

	"github.com/tessera/tessera/sql"
)

// EventData is the payload of one event type: Emit records it as the event's data under
// its EventType. Each event type has its own Go type, listed with its meaning by
// EventCatalog; the API publishes their schemas in the OpenAPI document's webhooks.
type EventData interface {
	// EventType is the event type the payload is the data of, one of EventTypes.
	EventType() string
}

// EventKind describes one event type: its name, when it is emitted, and a zero value of its
// payload's Go type.
type EventKind struct {
	Type        string
	Description string
	Data        EventData
}

// EventCatalog returns every event type Tessera emits, in a stable order, with its payload
// type: the one source of EventTypes, of the webhooks of the OpenAPI document and of the
// README's list of events.
func EventCatalog() []EventKind {
	return []EventKind{
		{EventLicenseIssued, "A licence was issued: by an admin, or by a paid purchase.", LicenseIssuedEvent{}},
		{EventLicenseSuspended, "An admin suspended a licence; it validates as SUSPENDED.", LicenseSuspendedEvent{}},
		{EventLicenseReinstated, "An admin reinstated a suspended licence.", LicenseReinstatedEvent{}},
		{EventLicenseRevoked, "A licence was revoked, by an admin or because its upstream store no longer knows it.", LicenseRevokedEvent{}},
		{EventLicenseExpired, "A licence passed its expiry (license.expire_sweep).", LicenseExpiredEvent{}},
		{EventLicenseTierChanged, "A tier change of a licence was applied: a paid upgrade, a downgrade at its renewal, or an admin's change.", LicenseTierChangedEvent{}},
		{EventLicenseUpstreamRevoked, "An imported licence's upstream store answered that the licence is gone.", LicenseUpstreamRevokedEvent{}},
		{EventSubscriptionCreated, "A subscription started with the licence of a recurring policy.", SubscriptionCreatedEvent{}},
		{EventSubscriptionCancelled, "A subscription was cancelled; its licence runs to the end of the paid period.", SubscriptionCancelledEvent{}},
		{EventSubscriptionRenewalPending, "The invoice of a renewal exists: the buyer pays it at checkout_url before it expires.", SubscriptionRenewalPendingEvent{}},
		{EventSubscriptionRenewed, "A renewal was paid; the licence runs for another period.", SubscriptionRenewedEvent{}},
		{EventSubscriptionLapsed, "A subscription's renewal went unpaid past its grace; its licence validates as EXPIRED.", SubscriptionLapsedEvent{}},
		{EventMachineActivated, "A machine was activated on a licence.", MachineActivatedEvent{}},
		{EventMachineDeactivated, "A machine was deactivated.", MachineDeactivatedEvent{}},
		{EventReferralRewardChanged, "A referrer's bonus or badge changed.", ReferralRewardChangedEvent{}},
		{EventPayInPaid, "A PayIn was paid; its effect (licence, subscription, credits, upgrade) is applied.", PayInPaidEvent{}},
		{EventPayInFailed, "A PayIn failed (cancelled, expired, invalid, underpaid, ...); failure_reason says why.", PayInFailedEvent{}},
		{EventPayInLatePaymentCredited, "Money reached the invoice of a PayIn that could no longer use it (failed, or paid already) and was credited to the payer as credits.", PayInLatePaymentCreditedEvent{}},
	}
}

// LicenseFields is the licence as licence and subscription events carry it, after the change.
type LicenseFields struct {
	LicenseID                  uuid.UUID         `json:"license_id"`
	CustomerID                 uuid.UUID         `json:"customer_id"`
	PolicyID                   uuid.UUID         `json:"policy_id"`
	Status                     sql.LicenseStatus `json:"status" enum:"active,suspended,revoked,expired" doc:"The licence's status after the change."`
	ExpiresAt                  *time.Time        `json:"expires_at" nullable:"true" doc:"null: the licence does not expire."`
	SubscriptionExpirationDate *time.Time        `json:"subscription_expiration_date" nullable:"true" doc:"Set when a subscription ended into a perpetual licence: releases after it are not covered."`
}

// LicenseFieldsOf returns the event fields of licence l.
func LicenseFieldsOf(l sql.License) LicenseFields {
	return LicenseFields{
		LicenseID: l.ID, CustomerID: l.CustomerID, PolicyID: l.PolicyID, Status: l.Status,
		ExpiresAt: l.ExpiresAt, SubscriptionExpirationDate: l.SubscriptionExpirationDate,
	}
}

// LicenseIssuedEvent is the data of license.issued.
type LicenseIssuedEvent LicenseFields

// LicenseSuspendedEvent is the data of license.suspended.
type LicenseSuspendedEvent LicenseFields

// LicenseReinstatedEvent is the data of license.reinstated.
type LicenseReinstatedEvent LicenseFields

// LicenseRevokedEvent is the data of license.revoked.
type LicenseRevokedEvent LicenseFields

// LicenseExpiredEvent is the data of license.expired.
type LicenseExpiredEvent LicenseFields

// LicenseTierChangedEvent is the data of license.tier_changed: the licence after the change and
// the change applied.
type LicenseTierChangedEvent struct {
	LicenseFields
	TierChangeFields
}

// TierChangeFields is a tier change as its events and audit entries carry it.
type TierChangeFields struct {
	TierChangeID     uuid.UUID            `json:"tier_change_id"`
	Kind             sql.TierChangeKind   `json:"kind" enum:"upgrade,downgrade,admin"`
	TierChangeStatus sql.TierChangeStatus `json:"tier_change_status" enum:"pending,scheduled,applied,cancelled,failed"`
	FromPolicyID     uuid.UUID            `json:"from_policy_id"`
	ToPolicyID       uuid.UUID            `json:"to_policy_id"`
	Charge           EventMoney           `json:"charge" doc:"What the change charged (0 for a downgrade or an admin change)."`
	PayInID          *uuid.UUID           `json:"payin_id" nullable:"true" doc:"The PayIn that paid an upgrade; null otherwise."`
	EffectiveAt      time.Time            `json:"effective_at"`
}

// TierChangeFieldsOf returns the event fields of tier change c.
func TierChangeFieldsOf(c sql.TierChange) TierChangeFields {
	return TierChangeFields{
		TierChangeID: c.ID, Kind: c.Kind, TierChangeStatus: c.Status, FromPolicyID: c.FromPolicyID, ToPolicyID: c.ToPolicyID,
		Charge: EventMoney{Currency: c.ChargeCurrency, Value: c.ChargeValue}, PayInID: c.PayInID, EffectiveAt: c.EffectiveAt,
	}
}

// EventMoney is an amount in minor units of a currency (sats for SAT).
type EventMoney struct {
	Currency sql.Currency `json:"currency" enum:"USD,EUR,SAT"`
	Value    int64        `json:"value"`
}

// LicenseUpstreamRevokedEvent is the data of license.upstream_revoked.
type LicenseUpstreamRevokedEvent struct {
	LicenseID         uuid.UUID `json:"license_id"`
	CustomerID        uuid.UUID `json:"customer_id"`
	StoreID           uuid.UUID `json:"store_id" doc:"The upstream store the licence was imported from."`
	ExternalLicenseID string    `json:"external_license_id" doc:"The licence's id in the upstream store."`
	UpstreamStatus    int       `json:"upstream_status" doc:"The HTTP status the store answered with."`
	DetectedAt        time.Time `json:"detected_at"`
}

// SubscriptionFields is the subscription, with its licence, as subscription events carry it.
type SubscriptionFields struct {
	LicenseFields
	SubscriptionID     uuid.UUID              `json:"subscription_id"`
	SubscriptionStatus sql.SubscriptionStatus `json:"subscription_status" enum:"active,past_due,lapsed,cancelled"`
	CurrentPeriodEnd   time.Time              `json:"current_period_end"`
}

// SubscriptionFieldsOf returns the event fields of subscription s and its licence l.
func SubscriptionFieldsOf(s sql.Subscription, l sql.License) SubscriptionFields {
	return SubscriptionFields{
		LicenseFields: LicenseFieldsOf(l), SubscriptionID: s.ID, SubscriptionStatus: s.Status, CurrentPeriodEnd: s.CurrentPeriodEnd,
	}
}

// SubscriptionCreatedEvent is the data of subscription.created.
type SubscriptionCreatedEvent SubscriptionFields

// SubscriptionLapsedEvent is the data of subscription.lapsed.
type SubscriptionLapsedEvent SubscriptionFields

// SubscriptionCancelledEvent is the data of subscription.cancelled.
type SubscriptionCancelledEvent struct {
	SubscriptionFields
	Message *string `json:"message" nullable:"true" doc:"The licence's message, which says until when it runs."`
}

// SubscriptionRenewedEvent is the data of subscription.renewed.
type SubscriptionRenewedEvent struct {
	SubscriptionFields
	CycleNumber int32     `json:"cycle_number"`
	PayInID     uuid.UUID `json:"payin_id" doc:"The PayIn that paid the renewal."`
}

// RenewalFields is a renewal cycle, with its subscription and licence and the PayIn that
// pays it, as subscription.renewal_pending and the renewal's audit entry carry it.
type RenewalFields struct {
	SubscriptionFields
	CycleNumber int32     `json:"cycle_number"`
	PeriodStart time.Time `json:"period_start"`
	PeriodEnd   time.Time `json:"period_end"`
	PayInID     uuid.UUID `json:"payin_id"`
	CostSats    int64     `json:"cost_sats"`
}

// SubscriptionRenewalPendingEvent is the data of subscription.renewal_pending.
type SubscriptionRenewalPendingEvent struct {
	RenewalFields
	InvoiceSats      int64      `json:"invoice_sats" doc:"What the invoice asks for, in sats."`
	CheckoutURL      string     `json:"checkout_url" doc:"Where the buyer pays."`
	InvoiceExpiresAt *time.Time `json:"invoice_expires_at" nullable:"true"`
}

// MachineFields is a machine as machine events carry it.
type MachineFields struct {
	MachineID   uuid.UUID `json:"machine_id"`
	LicenseID   uuid.UUID `json:"license_id"`
	Fingerprint string    `json:"fingerprint"`
}

// MachineFieldsOf returns the event fields of machine m.
func MachineFieldsOf(m sql.Machine) MachineFields {
	return MachineFields{MachineID: m.ID, LicenseID: m.LicenseID, Fingerprint: m.Fingerprint}
}

// MachineActivatedEvent is the data of machine.activated.
type MachineActivatedEvent MachineFields

// MachineDeactivatedEvent is the data of machine.deactivated.
type MachineDeactivatedEvent MachineFields

// ReferralRewardChangedEvent is the data of referral.reward_changed.
type ReferralRewardChangedEvent struct {
	CustomerID         uuid.UUID          `json:"customer_id" doc:"The referrer."`
	QualifiedTotal     *int32             `json:"qualified_total" nullable:"true" doc:"How many of the referrer's referrals qualify."`
	BonusUnits         *int32             `json:"bonus_units" nullable:"true"`
	Badge              *sql.ReferralBadge `json:"badge" nullable:"true" enum:"verified_referrer,elite_referrer"`
	PreviousBonusUnits int32              `json:"previous_bonus_units"`
	PreviousBadge      *sql.ReferralBadge `json:"previous_badge" nullable:"true" enum:"verified_referrer,elite_referrer"`
}

// PayInFields is a PayIn as PayIn events carry it, after the change.
type PayInFields struct {
	PayInID    uuid.UUID      `json:"payin_id"`
	CustomerID uuid.UUID      `json:"customer_id"`
	Type       sql.PayInType  `json:"type" enum:"license_purchase,subscription_renewal,tier_upgrade,credit_purchase,credit_grant"`
	State      sql.PayInState `json:"state" enum:"PENDING_INVOICE_CREATION,PENDING,PAID,FAILED"`
	CostSats   int64          `json:"cost_sats"`
	LicenseID  *uuid.UUID     `json:"license_id" nullable:"true" doc:"The licence the PayIn bought or pays for; null for credits."`
}

// PayInFieldsOf returns the event fields of PayIn p.
func PayInFieldsOf(p sql.PayIn) PayInFields {
	return PayInFields{PayInID: p.ID, CustomerID: p.CustomerID, Type: p.Type, State: p.State, CostSats: p.CostSats, LicenseID: p.LicenseID}
}

// PayInPaidEvent is the data of payin.paid.
type PayInPaidEvent PayInFields

// PayInFailedEvent is the data of payin.failed.
type PayInFailedEvent struct {
	PayInFields
	FailureReason sql.PayInFailureReason `json:"failure_reason" enum:"INVOICE_CREATION_FAILED,INVOICE_EXPIRED,INVOICE_INVALID,USER_CANCELLED,SYSTEM_CANCELLED,AMOUNT_MISMATCH,EXECUTION_FAILED,INVOICE_NOT_FOUND"`
}

// PayInLatePaymentCreditedEvent is the data of payin.late_payment_credited.
type PayInLatePaymentCreditedEvent struct {
	PayInFields
	CreditedSats int64 `json:"credited_sats" doc:"What was credited now."`
	ReceivedSats int64 `json:"received_sats" doc:"What the invoice has received in all."`
	BalanceAfter int64 `json:"balance_after" doc:"The payer's credits after."`
}

// EventType returns license.issued.
func (LicenseIssuedEvent) EventType() string { return EventLicenseIssued }

// EventType returns license.suspended.
func (LicenseSuspendedEvent) EventType() string { return EventLicenseSuspended }

// EventType returns license.reinstated.
func (LicenseReinstatedEvent) EventType() string { return EventLicenseReinstated }

// EventType returns license.revoked.
func (LicenseRevokedEvent) EventType() string { return EventLicenseRevoked }

// EventType returns license.expired.
func (LicenseExpiredEvent) EventType() string { return EventLicenseExpired }

// EventType returns license.tier_changed.
func (LicenseTierChangedEvent) EventType() string { return EventLicenseTierChanged }

// EventType returns license.upstream_revoked.
func (LicenseUpstreamRevokedEvent) EventType() string { return EventLicenseUpstreamRevoked }

// EventType returns subscription.created.
func (SubscriptionCreatedEvent) EventType() string { return EventSubscriptionCreated }

// EventType returns subscription.cancelled.
func (SubscriptionCancelledEvent) EventType() string { return EventSubscriptionCancelled }

// EventType returns subscription.renewal_pending.
func (SubscriptionRenewalPendingEvent) EventType() string { return EventSubscriptionRenewalPending }

// EventType returns subscription.renewed.
func (SubscriptionRenewedEvent) EventType() string { return EventSubscriptionRenewed }

// EventType returns subscription.lapsed.
func (SubscriptionLapsedEvent) EventType() string { return EventSubscriptionLapsed }

// EventType returns machine.activated.
func (MachineActivatedEvent) EventType() string { return EventMachineActivated }

// EventType returns machine.deactivated.
func (MachineDeactivatedEvent) EventType() string { return EventMachineDeactivated }

// EventType returns referral.reward_changed.
func (ReferralRewardChangedEvent) EventType() string { return EventReferralRewardChanged }

// EventType returns payin.paid.
func (PayInPaidEvent) EventType() string { return EventPayInPaid }

// EventType returns payin.failed.
func (PayInFailedEvent) EventType() string { return EventPayInFailed }

// EventType returns payin.late_payment_credited.
func (PayInLatePaymentCreditedEvent) EventType() string { return EventPayInLatePaymentCredited }
