package core

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/sql"
)

// CustomerCreateParams is a new customer of TenantID.
type CustomerCreateParams struct {
	TenantID   uuid.UUID
	Email      string
	ExternalID *string
	IsActive   bool
	IsVerified bool
	// InviteCode is the code the customer gives to people they refer; nil draws a random
	// one (NewInviteCode).
	InviteCode *string
	// ReferredBy is the customer who referred this one: another customer of the tenant
	// (a FieldError on referred_by otherwise).
	ReferredBy *uuid.UUID
	// Details gives the customer.create audit entry's details for the stored customer; nil
	// records no entry, for a caller that audits the creation itself (an upstream import
	// records one entry for all the customers it creates).
	Details func(sql.Customer) any
}

// CustomerCreate stores a new customer, audits it (customer.create; not when Details is
// nil) and, when it was referred, recomputes its referrer's reward (ReferralRecompute), whose
// referred total moves. A taken email, external id or invite code is ErrDuplicate naming the constraint.
func CustomerCreate(ctx context.Context, tx pgx.Tx, st Step, p CustomerCreateParams) (sql.Customer, error) {
	if p.ReferredBy != nil {
		if err := customerReferrerExists(ctx, tx, sql.CustomerGetParams{TenantID: p.TenantID, ID: *p.ReferredBy}); err != nil {
			return sql.Customer{}, err
		}
	}
	inviteCode := NewInviteCode()
	if p.InviteCode != nil {
		inviteCode = *p.InviteCode
	}
	customer, err := queries.CustomerCreate(ctx, tx, sql.CustomerCreateParams{
		TenantID: p.TenantID, ID: NewID(), Email: p.Email, ExternalID: p.ExternalID, IsActive: p.IsActive,
		IsVerified: p.IsVerified, InviteCode: inviteCode, ReferredBy: p.ReferredBy, Now: st.Now,
	})
	if err != nil {
		return sql.Customer{}, err
	}
	if p.Details != nil {
		err := Audit(ctx, tx, st, Change{TenantID: p.TenantID,
			Action: "customer.create", SubjectType: "customer", SubjectID: customer.ID.String(), Details: p.Details(customer),
		})
		if err != nil {
			return sql.Customer{}, err
		}
	}
	if customer.ReferredBy != nil { // a new referral: its referrer's referred total moves
		if _, err := ReferralRecompute(ctx, tx, st, ReferralRecomputeParams{TenantID: customer.TenantID, ReferrerIDs: []uuid.UUID{*customer.ReferredBy}}); err != nil {
			return sql.Customer{}, err
		}
	}
	return customer, nil
}

// CustomerUpdateParams changes customer ID of TenantID; nil fields keep their value.
type CustomerUpdateParams struct {
	TenantID uuid.UUID
	ID       uuid.UUID
	Email    *string
	// SetExternalID says whether ExternalID is set (nil clears it) or kept.
	SetExternalID bool
	ExternalID    *string
	IsActive      *bool
	IsVerified    *bool
	// ReferredBy sets the customer's referrer, only while it has none (customerReferrerAllowed).
	ReferredBy *uuid.UUID
	// Sent is the change as the caller received it, recorded as the customer.update audit
	// entry's details.
	Sent any
}

// CustomerUpdate changes a customer, audits it (customer.update) and, when its activity,
// verification or referrer changed and it has a referrer, recomputes that referrer's reward
// (ReferralRecompute). A new referrer is checked under CustomerReferralLock, taken before the
// customer's row lock. An unknown customer is ErrNotFound.
func CustomerUpdate(ctx context.Context, tx pgx.Tx, st Step, p CustomerUpdateParams) (sql.Customer, error) {
	if p.ReferredBy != nil {
		// Before the row lock: see CustomerReferralLock.
		if err := queries.CustomerReferralLock(ctx, tx, p.TenantID); err != nil {
			return sql.Customer{}, fmt.Errorf("lock referrals: %w", err)
		}
	}
	current, err := queries.CustomerGetForUpdate(ctx, tx, sql.CustomerGetForUpdateParams{TenantID: p.TenantID, ID: p.ID})
	if err != nil {
		return sql.Customer{}, notFound(err, "customer", p.ID)
	}
	if p.ReferredBy != nil && (current.ReferredBy == nil || *current.ReferredBy != *p.ReferredBy) {
		if err := customerReferrerAllowed(ctx, tx, current, *p.ReferredBy); err != nil {
			return sql.Customer{}, err
		}
	}
	customer, err := queries.CustomerUpdate(ctx, tx, sql.CustomerUpdateParams{
		TenantID: p.TenantID, ID: p.ID, Email: p.Email, SetExternalID: p.SetExternalID, ExternalID: p.ExternalID,
		IsActive: p.IsActive, IsVerified: p.IsVerified, ReferredBy: p.ReferredBy, Now: st.Now,
	})
	if err != nil {
		return sql.Customer{}, notFound(err, "customer", p.ID)
	}
	err = Audit(ctx, tx, st, Change{TenantID: p.TenantID,
		Action: "customer.update", SubjectType: "customer", SubjectID: customer.ID.String(), Details: p.Sent,
	})
	if err != nil {
		return sql.Customer{}, err
	}
	// Activity, verification and a new referrer can move the referrer's count.
	if customer.ReferredBy != nil && (customer.IsActive != current.IsActive || customer.IsVerified != current.IsVerified || current.ReferredBy == nil) {
		if _, err := ReferralRecompute(ctx, tx, st, ReferralRecomputeParams{TenantID: customer.TenantID, ReferrerIDs: []uuid.UUID{*customer.ReferredBy}}); err != nil {
			return sql.Customer{}, err
		}
	}
	return customer, nil
}

// customerReferrerExists is nil when referrer names a customer of its tenant, and a
// FieldError on referred_by otherwise: a referrer of another tenant reads exactly like one
// that does not exist.
func customerReferrerExists(ctx context.Context, tx pgx.Tx, referrer sql.CustomerGetParams) error {
	_, err := queries.CustomerGet(ctx, tx, referrer)
	switch {
	case errors.Is(err, ErrNotFound):
		return &FieldError{Field: "referred_by", Detail: fmt.Sprintf("referred_by %s not found: it must be a customer of the tenant", referrer.ID), Value: referrer.ID}
	case err != nil:
		return fmt.Errorf("read referrer %s: %w", referrer.ID, err)
	}
	return nil
}

// customerReferrerAllowed decides whether customer, whose referrer is being set, may get
// referrerID: only while it has none (ErrReferrerSet), never itself, only an existing
// customer of the tenant, and never one it referred, directly or not (a referral cycle;
// each a FieldError on referred_by). The caller holds CustomerReferralLock.
func customerReferrerAllowed(ctx context.Context, tx pgx.Tx, customer sql.Customer, referrerID uuid.UUID) error {
	switch {
	case customer.ReferredBy != nil:
		return fmt.Errorf("%w: customer %s was already referred by %s; referred_by cannot change once set", ErrReferrerSet, customer.ID, *customer.ReferredBy)
	case referrerID == customer.ID:
		return &FieldError{Field: "referred_by", Detail: "a customer cannot refer themselves", Value: referrerID}
	}
	if err := customerReferrerExists(ctx, tx, sql.CustomerGetParams{TenantID: customer.TenantID, ID: referrerID}); err != nil {
		return err
	}
	cycle, err := queries.CustomerReferrerChainContains(ctx, tx, sql.CustomerReferrerChainContainsParams{
		TenantID: customer.TenantID, ReferrerID: referrerID, CustomerID: customer.ID,
	})
	switch {
	case err != nil:
		return fmt.Errorf("check referral chain of customer %s: %w", customer.ID, err)
	case cycle:
		return &FieldError{
			Field:  "referred_by",
			Detail: fmt.Sprintf("referred_by %s would make a referral cycle: customer %s referred them, directly or not", referrerID, customer.ID),
			Value:  referrerID,
		}
	}
	return nil
}

// inviteAlphabet has 32 characters without look-alikes (no 0, O, 1, I).
const inviteAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"

// NewInviteCode returns a random 10-character invite code (50 bits), the code a customer
// created without one gets.
func NewInviteCode() string {
	b := make([]byte, 10)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it panics on an unusable source)
	for i := range b {
		b[i] = inviteAlphabet[b[i]&31]
	}
	return string(b)
}

// CustomerSetAutoPayParams turns auto-pay of customer ID of TenantID on or off.
type CustomerSetAutoPayParams struct {
	TenantID uuid.UUID
	ID       uuid.UUID
	AutoPay  bool
}

// CustomerSetAutoPay turns a customer's auto-pay on or off (renewals then take custodial
// balances first, credits then reward_sats) and audits it (customer.auto_pay). An unknown
// customer is ErrNotFound.
func CustomerSetAutoPay(ctx context.Context, tx pgx.Tx, st Step, p CustomerSetAutoPayParams) (sql.Customer, error) {
	customer, err := queries.CustomerSetAutoPay(ctx, tx, sql.CustomerSetAutoPayParams{TenantID: p.TenantID, ID: p.ID, AutoPay: p.AutoPay, Now: st.Now})
	if err != nil {
		return sql.Customer{}, fmt.Errorf("set auto-pay of customer %s: %w", p.ID, err)
	}
	err = Audit(ctx, tx, st, Change{TenantID: p.TenantID,
		Action: "customer.auto_pay", SubjectType: "customer", SubjectID: p.ID.String(),
		Details: map[string]any{"auto_pay": p.AutoPay},
	})
	return customer, err
}
