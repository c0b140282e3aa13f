package upstream

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/sql"
)

// Activation is one machine an imported licence is activated on. Its tags describe it in
// the API's OpenAPI document (the import operation's rows).
type Activation struct {
	// Fingerprint identifies the machine (required, 1 to 255 bytes, once per row).
	Fingerprint string `json:"fingerprint" minLength:"1" maxLength:"255" example:"4c:1a:9f:2e:7b:30" doc:"Identifies the machine; listed once per row."`
	// Name is the machine's name (at most 200 bytes).
	Name string `json:"name,omitempty" maxLength:"200" example:"studio-pc" doc:"The machine's name."`
	// ActivatedAt is when the machine was activated (between 1970 and now); default the
	// time of the import.
	ActivatedAt *time.Time `json:"activated_at,omitempty" doc:"When the machine was activated, between 1970 and now; default the time of the import."`
}

// Row is one imported licence, as a store knows it. Its tags describe it in the API's
// OpenAPI document (the import operation's rows).
type Row struct {
	// ExternalLicenseID is the store's licence id (required, at most 200 characters).
	ExternalLicenseID string `json:"external_license_id" minLength:"1" maxLength:"200" example:"JX-8842-1177" doc:"The store's licence id; re-importing it updates the licence."`
	// Owner is the store's user id of the buyer (required, at most 200 characters); each
	// owner becomes one customer of the tenant.
	Owner string `json:"owner" minLength:"1" maxLength:"200" example:"user_51a2" doc:"The store's user id of the buyer; each owner becomes one customer."`
	// OwnerEmail, when given, maps the owner to the tenant's customer with that email (or
	// names the new one); otherwise a placeholder address is made up.
	OwnerEmail string `json:"owner_email,omitempty" maxLength:"320" example:"buyer@example.com" doc:"Maps the owner to the tenant's customer with this address (or names the new one); a placeholder address otherwise."`
	// AcquiredAt is when the owner got the licence (required, not in the future).
	AcquiredAt time.Time `json:"acquired_at" doc:"When the owner got the licence: after 1970, not in the future."`
	// Activations are the machines the licence is active on (at most 100).
	Activations []Activation `json:"activations,omitempty" maxItems:"100" doc:"The machines the licence is active on."`
}

// RowError is a problem with one row: its index (from 0), where in the row, and what.
type RowError struct {
	Row     int
	Field   string
	Message string
}

func (e RowError) Error() string {
	return fmt.Sprintf("row %d: %s: %s", e.Row, e.Field, e.Message)
}

// RowErrors are every problem found in an import; nothing was written.
type RowErrors []RowError

func (e RowErrors) Error() string {
	msgs := make([]string, 0, min(len(e), 3))
	for i, re := range e {
		if i == 3 {
			msgs = append(msgs, fmt.Sprintf("and %d more", len(e)-3))
			break
		}
		msgs = append(msgs, re.Error())
	}
	return fmt.Sprintf("%s: %d invalid rows: %s", core.ErrInvalid, len(e), strings.Join(msgs, "; "))
}

// Unwrap makes RowErrors a core.ErrInvalid.
func (e RowErrors) Unwrap() error { return core.ErrInvalid }

// maxRowErrors bounds the row errors one import reports.
const maxRowErrors = 100

// ParseRows reads an import: a JSON array of rows, or NDJSON (one row per line; blank lines
// are skipped). Rows that cannot be decoded or break a rule are all reported (up to 100) as
// RowErrors, with the row's index from 0 (for NDJSON, the index of its non-blank line).
func ParseRows(r io.Reader, now time.Time) ([]Row, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	first, err := firstNonSpace(br)
	if err != nil {
		return nil, err
	}
	var rows []Row
	var errs RowErrors
	add := func(row Row, index int, decodeErr error) {
		if decodeErr != nil {
			errs = append(errs, RowError{Row: index, Field: "row", Message: "not a valid row object: " + cleanJSONError(decodeErr)})
			return
		}
		errs = append(errs, row.validate(index, now)...)
		rows = append(rows, row)
	}
	if first == '[' {
		dec := json.NewDecoder(br)
		if _, err := dec.Token(); err != nil {
			return nil, fmt.Errorf("%w: body is not a JSON array: %s", core.ErrInvalid, cleanJSONError(err))
		}
		for i := 0; dec.More() && len(errs) < maxRowErrors; i++ {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, fmt.Errorf("%w: body is not a JSON array: %s", core.ErrInvalid, cleanJSONError(err))
			}
			row, err := decodeRow(raw)
			add(row, i, err)
		}
	} else {
		sc := bufio.NewScanner(br)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for i := 0; sc.Scan() && len(errs) < maxRowErrors; {
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			row, err := decodeRow(line)
			add(row, i, err)
			i++
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%w: read NDJSON: %w", core.ErrInvalid, err)
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: no rows to import", core.ErrInvalid)
	}
	return rows, nil
}

func firstNonSpace(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if errors.Is(err, io.EOF) {
			return 0, fmt.Errorf("%w: no rows to import", core.ErrInvalid)
		} else if err != nil {
			return 0, fmt.Errorf("read import: %w", err)
		}
		if b != ' ' && b != '\n' && b != '\r' && b != '\t' {
			return b, br.UnreadByte()
		}
	}
}

func decodeRow(b []byte) (Row, error) {
	var row Row
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&row); err != nil {
		return Row{}, err
	}
	if dec.More() {
		return Row{}, errors.New("more than one JSON value")
	}
	return row, nil
}

// cleanJSONError words a decoding error without Go type names.
func cleanJSONError(err error) string {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return fmt.Sprintf("field %s has the wrong type (%s)", typeErr.Field, typeErr.Value)
	}
	return err.Error()
}

// validate checks one row's rules.
func (r Row) validate(index int, now time.Time) []RowError {
	var errs []RowError
	bad := func(field, msg string) { errs = append(errs, RowError{Row: index, Field: field, Message: msg}) }
	text := func(field, v string, required bool) {
		switch {
		case v == "" && required:
			bad(field, "is required")
		case len(v) > 200:
			bad(field, "must be at most 200 characters")
		case !utf8.ValidString(v) || strings.ContainsRune(v, 0):
			bad(field, "must be UTF-8 text without NUL characters")
		}
	}
	text("external_license_id", r.ExternalLicenseID, true)
	text("owner", r.Owner, true)
	if r.OwnerEmail != "" {
		if at := strings.IndexByte(r.OwnerEmail, '@'); at <= 0 || at == len(r.OwnerEmail)-1 || strings.ContainsAny(r.OwnerEmail, " \t\r\n") ||
			strings.Count(r.OwnerEmail, "@") != 1 || len(r.OwnerEmail) > 320 || !utf8.ValidString(r.OwnerEmail) {
			bad("owner_email", "must be a bare local@domain address of at most 320 characters")
		}
	}
	switch {
	case r.AcquiredAt.IsZero():
		bad("acquired_at", "is required (RFC 3339)")
	case r.AcquiredAt.After(now):
		bad("acquired_at", "must not be in the future")
	case r.AcquiredAt.Year() < 1970:
		bad("acquired_at", "must be after 1970")
	}
	if len(r.Activations) > 100 {
		bad("activations", "at most 100 activations")
	}
	seen := map[string]bool{}
	for i, a := range r.Activations {
		field := fmt.Sprintf("activations[%d]", i)
		switch {
		case a.Fingerprint == "" || len(a.Fingerprint) > 255:
			bad(field+".fingerprint", "must be 1 to 255 characters")
		case !utf8.ValidString(a.Fingerprint) || strings.ContainsRune(a.Fingerprint, 0):
			bad(field+".fingerprint", "must be UTF-8 text without NUL characters")
		case seen[a.Fingerprint]:
			bad(field+".fingerprint", "is listed twice")
		}
		seen[a.Fingerprint] = true
		if len(a.Name) > 200 || !utf8.ValidString(a.Name) || strings.ContainsRune(a.Name, 0) {
			bad(field+".name", "must be UTF-8 text of at most 200 characters")
		}
		if a.ActivatedAt != nil && (a.ActivatedAt.After(now) || a.ActivatedAt.Year() < 1970) {
			bad(field+".activated_at", "must be between 1970 and now")
		}
	}
	return errs
}

// ImportResult counts what an import did.
type ImportResult struct {
	// Created is how many licences were new.
	Created int `json:"created"`
	// Updated is how many existing licences changed owner or acquisition time, or got new
	// activations.
	Updated int `json:"updated"`
	// Unchanged is how many rows matched what was already imported.
	Unchanged int `json:"unchanged"`
}

// Importer imports rows of one store in one transaction. It keeps the owners it has mapped,
// so a large import looks each owner up once.
type Importer struct {
	tx     pgx.Tx
	st     core.Step
	store  sql.UpstreamStore
	signer func(licenseID uuid.UUID) string
	owners map[string]uuid.UUID
	Result ImportResult
}

// ImporterParams names the store of TenantID an import goes into.
type ImporterParams struct {
	TenantID uuid.UUID
	StoreID  uuid.UUID
}

// NewImporter prepares an import into store p.StoreID of p.TenantID in tx. An unknown store
// is core.ErrNotFound.
func NewImporter(ctx context.Context, tx pgx.Tx, st core.Step, p ImporterParams) (*Importer, error) {
	tenantID := p.TenantID
	store, err := queries.UpstreamStoreGet(ctx, tx, sql.UpstreamStoreGetParams{TenantID: tenantID, ID: p.StoreID})
	if errors.Is(err, core.ErrNotFound) {
		return nil, fmt.Errorf("%w: upstream store %s", core.ErrNotFound, p.StoreID)
	} else if err != nil {
		return nil, fmt.Errorf("read upstream store %s: %w", p.StoreID, err)
	}
	signer, err := core.SigningKeyPrivate(ctx, tx, core.SigningKeyPrivateParams{TenantID: tenantID, Box: st.Box})
	if err != nil {
		return nil, err
	}
	return &Importer{tx: tx, st: st, store: store, signer: signer.Sign, owners: map[string]uuid.UUID{}}, nil
}

// Import writes one row (already validated by ParseRows): it creates the licence, or
// updates the one with the same external id, never duplicating it; it maintains the owners'
// aggregates in the same transaction. A licence already known gone keeps its owner and
// acquisition time (its history is settled). An error leaves the transaction unusable: the
// caller rolls it back, so nothing is half-written.
func (im *Importer) Import(ctx context.Context, index int, r Row) error {
	tenantID := im.store.TenantID
	customerID, err := im.owner(ctx, r)
	if err != nil {
		return fmt.Errorf("row %d: map owner %q: %w", index, r.Owner, err)
	}
	acquired := r.AcquiredAt.UTC().Truncate(time.Second)
	current, err := queries.UpstreamLicenseFind(ctx, im.tx, sql.UpstreamLicenseFindParams{TenantID: tenantID, ExternalLicenseID: r.ExternalLicenseID})
	changed := false
	var licenseID uuid.UUID
	switch {
	case errors.Is(err, core.ErrNotFound):
		licenseID, err = im.create(ctx, r, customerID, acquired)
		if err != nil {
			return fmt.Errorf("row %d: %w", index, err)
		}
		im.Result.Created++
	case err != nil:
		return fmt.Errorf("row %d: find licence %q: %w", index, r.ExternalLicenseID, err)
	case current.StoreID != im.store.ID:
		return RowErrors{{Row: index, Field: "external_license_id", Message: fmt.Sprintf("licence %q was imported from another store", r.ExternalLicenseID)}}
	default:
		licenseID = current.ID
		if current.GoneAt == nil && (current.CustomerID != customerID || !current.AcquiredAt.Equal(acquired)) {
			if err := im.reown(ctx, current, customerID, acquired); err != nil {
				return fmt.Errorf("row %d: %w", index, err)
			}
			changed = true
		}
	}
	if len(r.Activations) > 0 {
		n := len(r.Activations)
		p := sql.UpstreamActivationsImportParams{TenantID: tenantID, LicenseID: licenseID,
			IDs: make([]uuid.UUID, n), Fingerprints: make([]string, n), Names: make([]string, n), ActivatedAt: make([]time.Time, n)}
		for i, a := range r.Activations {
			p.IDs[i], p.Fingerprints[i], p.Names[i], p.ActivatedAt[i] = core.NewID(), a.Fingerprint, a.Name, acquired
			if a.ActivatedAt != nil {
				p.ActivatedAt[i] = *a.ActivatedAt
			}
		}
		added, err := queries.UpstreamActivationsImport(ctx, im.tx, p)
		if err != nil {
			return fmt.Errorf("row %d: import activations: %w", index, err)
		}
		changed = changed || (added > 0 && current.ID != uuid.Nil)
	}
	switch {
	case current.ID == uuid.Nil:
	case changed:
		im.Result.Updated++
	default:
		im.Result.Unchanged++
	}
	return nil
}

// create inserts a new imported licence and counts it in its owner's aggregates.
func (im *Importer) create(ctx context.Context, r Row, customerID uuid.UUID, acquired time.Time) (uuid.UUID, error) {
	tenantID, now := im.store.TenantID, im.st.Now
	id := core.NewID()
	_, err := queries.LicenseImportCreate(ctx, im.tx, sql.LicenseImportCreateParams{
		ID: id, CustomerID: customerID, Key: im.signer(id), AcquiredAt: acquired, ExternalLicenseID: r.ExternalLicenseID,
		Now: now, TenantID: tenantID, PolicyID: im.store.PolicyID,
	})
	if errors.Is(err, core.ErrNotFound) { // nothing inserted: say why
		taken, err := queries.UpstreamLicenseExternalTaken(ctx, im.tx, sql.UpstreamLicenseExternalTakenParams{TenantID: tenantID, ExternalLicenseID: r.ExternalLicenseID})
		switch {
		case err != nil:
			return uuid.Nil, fmt.Errorf("create licence %q: %w", r.ExternalLicenseID, err)
		case taken:
			return uuid.Nil, fmt.Errorf("%w: licence %q is being imported by another request, or exists without import state", core.ErrImportInProgress, r.ExternalLicenseID)
		}
		return uuid.Nil, fmt.Errorf("%w: the store's policy %s no longer exists", core.ErrInvalid, im.store.PolicyID)
	} else if err != nil {
		return uuid.Nil, fmt.Errorf("create licence %q: %w", r.ExternalLicenseID, err)
	}
	// The aggregates first: the check state's priority bound is computed from them as it is
	// inserted (upstream_licenses_bound), so they must count the licence already.
	if err := ownerStatsAdd(ctx, im.tx, ownerStatsDelta{TenantID: tenantID, CustomerID: customerID, Unrevoked: 1, StartSum: acquired.Unix()}); err != nil {
		return uuid.Nil, err
	}
	err = queries.UpstreamLicenseCreate(ctx, im.tx, sql.UpstreamLicenseCreateParams{
		TenantID: tenantID, LicenseID: id, StoreID: im.store.ID, CustomerID: customerID, AcquiredAt: acquired, Now: now,
	})
	if err != nil {
		return uuid.Nil, fmt.Errorf("start check state of %q: %w", r.ExternalLicenseID, err)
	}
	return id, nil
}

// reown moves an unrevoked licence to another owner or acquisition time, moving its share
// of the aggregates with it.
func (im *Importer) reown(ctx context.Context, current sql.UpstreamLicenseFindRow, customerID uuid.UUID, acquired time.Time) error {
	tenantID := im.store.TenantID
	err := ownerStatsAdd(ctx, im.tx, ownerStatsDelta{TenantID: tenantID, CustomerID: current.CustomerID, Unrevoked: -1, StartSum: -current.AcquiredAt.Unix()})
	if err != nil {
		return err
	}
	if err := ownerStatsAdd(ctx, im.tx, ownerStatsDelta{TenantID: tenantID, CustomerID: customerID, Unrevoked: 1, StartSum: acquired.Unix()}); err != nil {
		return err
	}
	err = queries.UpstreamLicenseReown(ctx, im.tx, sql.UpstreamLicenseReownParams{
		CustomerID: customerID, AcquiredAt: acquired, TenantID: tenantID, LicenseID: current.ID, Now: im.st.Now,
	})
	if err != nil {
		return fmt.Errorf("re-own licence %s: %w", current.ID, err)
	}
	return nil
}

// owner maps a row's owner to a customer: the one already mapped, else the customer with the
// row's email, else a new customer.
func (im *Importer) owner(ctx context.Context, r Row) (uuid.UUID, error) {
	if id, ok := im.owners[r.Owner]; ok {
		return id, nil
	}
	tenantID := im.store.TenantID
	id, err := queries.UpstreamOwnerGet(ctx, im.tx, sql.UpstreamOwnerGetParams{TenantID: tenantID, StoreID: im.store.ID, ExternalOwnerID: r.Owner})
	switch {
	case err == nil:
		im.owners[r.Owner] = id
		return id, nil
	case !errors.Is(err, core.ErrNotFound):
		return uuid.Nil, err
	}
	email := r.OwnerEmail
	if email == "" {
		sum := sha256.Sum256([]byte(im.store.ID.String() + "/" + r.Owner))
		email = "owner-" + hex.EncodeToString(sum[:8]) + "@" + im.store.ID.String() + ".upstream.invalid"
	}
	id, err = queries.UpstreamOwnerCustomerByEmail(ctx, im.tx, sql.UpstreamOwnerCustomerByEmailParams{TenantID: tenantID, Email: email})
	if errors.Is(err, core.ErrNotFound) {
		// Not audited one by one: Finish records the import as one entry.
		customer, cerr := core.CustomerCreate(ctx, im.tx, im.st, core.CustomerCreateParams{TenantID: tenantID, Email: email, IsActive: true})
		if cerr != nil {
			return uuid.Nil, fmt.Errorf("create customer: %w", cerr)
		}
		id, err = customer.ID, nil
	}
	if err != nil {
		return uuid.Nil, err
	}
	err = queries.UpstreamOwnerCreate(ctx, im.tx, sql.UpstreamOwnerCreateParams{TenantID: tenantID, StoreID: im.store.ID, ExternalOwnerID: r.Owner, CustomerID: id})
	if err != nil {
		return uuid.Nil, fmt.Errorf("record owner: %w", err)
	}
	im.owners[r.Owner] = id
	return id, nil
}

// Finish audits the import as one entry with its counts.
func (im *Importer) Finish(ctx context.Context) error {
	return core.Audit(ctx, im.tx, im.st, core.Change{TenantID: im.store.TenantID,
		Action: "upstream_store.import", SubjectType: "upstream_store", SubjectID: im.store.ID.String(), Details: im.Result,
	})
}

// ownerStatsDelta is a change to the aggregates of owner CustomerID of TenantID.
type ownerStatsDelta struct {
	TenantID   uuid.UUID
	CustomerID uuid.UUID
	// Revoked is the change in licences gone upstream, RevokedAt the time of a new one.
	Revoked   int32
	RevokedAt *time.Time
	// RevokedSeconds is the change in seconds held before going.
	RevokedSeconds int64
	// Unrevoked is the change in licences not gone, StartSum in the sum of their
	// acquisition times (Unix seconds).
	Unrevoked int32
	StartSum  int64
}

// ownerStatsAdd applies d to its owner's aggregates, creating them for the owner's first
// licence.
func ownerStatsAdd(ctx context.Context, tx sql.DBTX, d ownerStatsDelta) error {
	n, err := queries.UpstreamOwnerStatsAdd(ctx, tx, sql.UpstreamOwnerStatsAddParams{
		TenantID: d.TenantID, CustomerID: d.CustomerID, RevokedCount: d.Revoked, RevokedAt: d.RevokedAt,
		RevokedSeconds: d.RevokedSeconds, UnrevokedCount: d.Unrevoked, UnrevokedStartSum: d.StartSum,
	})
	if err == nil && n == 0 {
		if d.Revoked != 0 || d.Unrevoked < 0 {
			return fmt.Errorf("update aggregates of owner %s: the owner has no aggregates to change", d.CustomerID)
		}
		err = queries.UpstreamOwnerStatsCreate(ctx, tx, sql.UpstreamOwnerStatsCreateParams{
			TenantID: d.TenantID, CustomerID: d.CustomerID, UnrevokedCount: d.Unrevoked, UnrevokedStartSum: d.StartSum,
		})
	}
	if err != nil {
		return fmt.Errorf("update aggregates of owner %s: %w", d.CustomerID, err)
	}
	return nil
}
