package api

import (
	"context"
	"net/http"
	"reflect"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/sql"
)

// Machine is an activation of a licence on one machine.
type Machine struct {
	ID            uuid.UUID  `json:"id"`
	LicenseID     uuid.UUID  `json:"license_id"`
	Fingerprint   string     `json:"fingerprint" example:"4c:7f:2a:9e:11:d0"`
	Name          *string    `json:"name,omitempty" example:"build server"`
	ActivatedAt   time.Time  `json:"activated_at"`
	DeactivatedAt *time.Time `json:"deactivated_at,omitempty"`
}

func machineFrom(m sql.Machine) Machine {
	return Machine{ID: m.ID, LicenseID: m.LicenseID, Fingerprint: m.Fingerprint, Name: m.Name, ActivatedAt: m.ActivatedAt, DeactivatedAt: m.DeactivatedAt}
}

// MachineFields describe the machine to activate.
type MachineFields struct {
	Fingerprint string  `json:"fingerprint" minLength:"1" maxLength:"255" doc:"A stable identifier of the machine, chosen by the client." example:"4c:7f:2a:9e:11:d0"`
	Name        *string `json:"name,omitempty" maxLength:"200" example:"build server"`
}

// MachineOutput is one machine. Activation answers 201 when it activated the machine and
// 200 when the fingerprint was already active.
type MachineOutput struct {
	Status int
	Body   Machine
}

// MachineActivateAdminInput activates a machine on a licence by id.
type MachineActivateAdminInput struct {
	ID   uuid.UUID `path:"id"`
	Body MachineFields
}

// MachineActivateInput activates a machine on the licence whose key it carries.
type MachineActivateInput struct {
	Body struct {
		Key string `json:"key" maxLength:"512" doc:"The licence key." example:"TSR1.AZKf...Q"`
		MachineFields
	}
}

// MachineDeactivateInput deactivates, by fingerprint, a machine of the licence whose key it
// carries.
type MachineDeactivateInput struct {
	Body struct {
		Key         string `json:"key" maxLength:"512" doc:"The licence key." example:"TSR1.AZKf...Q"`
		Fingerprint string `json:"fingerprint" minLength:"1" maxLength:"255" example:"4c:7f:2a:9e:11:d0"`
	}
}

// MachineIDInput names one machine of one licence.
type MachineIDInput struct {
	ID        uuid.UUID `path:"id"`
	MachineID uuid.UUID `path:"machine_id"`
}

// MachineListInput pages through a licence's machines.
type MachineListInput struct {
	ID uuid.UUID `path:"id"`
	PageParams
	IncludeInactive bool `query:"include_inactive" doc:"Also list deactivated machines."`
}

// MachineListOutput is a page of machines.
type MachineListOutput struct {
	Body Page[Machine]
}

// activation documents both answers of an activation: 201 with the machine it activated
// (the default status) and 200 with the machine of a fingerprint already active.
func (s *Server) activation(op huma.Operation) huma.Operation {
	op.DefaultStatus = http.StatusCreated
	machine := s.api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[Machine](), true, "")
	op.Responses = map[string]*huma.Response{
		"201": {Description: "The machine, activated."},
		"200": {
			Description: "The fingerprint was already active: its machine, unchanged.",
			Content:     map[string]*huma.MediaType{"application/json": {Schema: machine}},
		},
	}
	return op
}

func (s *Server) registerMachines() {
	huma.Register(s.api, s.activation(adminOperation(machineActivateAdminOperation)), s.machineActivateAdmin)
	huma.Register(s.api, adminOperation(machineListOperation), s.machineList)
	huma.Register(s.api, adminOperation(machineDeactivateAdminOperation), s.machineDeactivateAdmin)
	huma.Register(s.api, s.activation(buyerOperation(machineActivateOperation, s.tenantOfLicenseKey)), s.machineActivate)
	huma.Register(s.api, buyerOperation(machineDeactivateOperation, s.tenantOfLicenseKey), s.machineDeactivate)
}

var machineTags = []string{"Machines"}

var machineActivateAdminOperation = huma.Operation{
	OperationID: "machine-activate-admin",
	Method:      http.MethodPost,
	Path:        "/v1/admin/licenses/{id}/machines",
	Summary:     "Activate a machine on a licence",
	Description: "At most max_machines machines are active at once: with every slot taken this is 409, even under concurrent activations. An already active fingerprint answers 200 with its machine.",
	Tags:        machineTags,
	Errors:      []int{http.StatusNotFound, http.StatusConflict},
}

// machineActivateAdmin activates a machine on one of the caller's licences.
func (s *Server) machineActivateAdmin(ctx context.Context, in *MachineActivateAdminInput) (*MachineOutput, error) {
	m, created, err := core.MachineActivate(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.MachineActivateParams{
		TenantID: tenantID(ctx), LicenseID: in.ID, Fingerprint: in.Body.Fingerprint, Name: in.Body.Name,
	})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return machineActivated(m, created), nil
}

var machineListOperation = huma.Operation{
	OperationID: "machine-list",
	Method:      http.MethodGet,
	Path:        "/v1/admin/licenses/{id}/machines",
	Summary:     "List a licence's machines, newest first",
	Tags:        machineTags,
	Errors:      []int{http.StatusNotFound},
}

// machineList reads a page of a licence's machines.
func (s *Server) machineList(ctx context.Context, in *MachineListInput) (*MachineListOutput, error) {
	if _, err := s.license(ctx, in.ID); err != nil {
		return nil, problem(ctx, err)
	}
	after, fetch := in.cursor()
	rows, err := s.queries.MachineList(ctx, s.conn(ctx), sql.MachineListParams{
		TenantID: tenantID(ctx), LicenseID: in.ID, IncludeInactive: in.IncludeInactive, After: after, RowLimit: fetch,
	})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &MachineListOutput{Body: page(rows, fetch, machineFrom, func(m sql.Machine) uuid.UUID { return m.ID })}, nil
}

var machineDeactivateAdminOperation = huma.Operation{
	OperationID: "machine-deactivate-admin",
	Method:      http.MethodDelete,
	Path:        "/v1/admin/licenses/{id}/machines/{machine_id}",
	Summary:     "Deactivate a machine of a licence",
	Description: "Frees the machine's place on the licence and answers the deactivated machine. 404 when the tenant has no such licence or machine.",
	Tags:        machineTags,
	Errors:      []int{http.StatusNotFound},
}

// machineDeactivateAdmin deactivates an active machine of one of the caller's licences.
func (s *Server) machineDeactivateAdmin(ctx context.Context, in *MachineIDInput) (*MachineOutput, error) {
	m, err := core.MachineDeactivate(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.MachineDeactivateParams{TenantID: tenantID(ctx), LicenseID: in.ID, ID: in.MachineID})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &MachineOutput{Status: http.StatusOK, Body: machineFrom(m)}, nil
}

var machineActivateOperation = huma.Operation{
	OperationID: "machine-activate",
	Method:      http.MethodPost,
	Path:        "/v1/machines/activate",
	Summary:     "Activate this machine on a licence (buyer)",
	Description: "Authenticated by the licence key: a malformed, forged or unknown key is 401. At most max_machines machines are active at once (409 when every slot is taken); an already active fingerprint answers 200.",
	Tags:        machineTags,
	Errors:      []int{http.StatusUnauthorized, http.StatusConflict},
}

// machineActivate activates the buyer's machine on the licence whose key it presents.
func (s *Server) machineActivate(ctx context.Context, in *MachineActivateInput) (*MachineOutput, error) {
	l, err := s.licenseByKey(ctx, in.Body.Key)
	if err != nil {
		return nil, problem(ctx, err)
	}
	m, created, err := core.MachineActivate(ctx, tx(ctx), s.step(ctx, buyer(ctx, l.ID)), core.MachineActivateParams{
		TenantID: l.TenantID, LicenseID: l.ID, Fingerprint: in.Body.Fingerprint, Name: in.Body.Name,
	})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return machineActivated(m, created), nil
}

var machineDeactivateOperation = huma.Operation{
	OperationID: "machine-deactivate",
	Method:      http.MethodPost,
	Path:        "/v1/machines/deactivate",
	Summary:     "Deactivate a machine of a licence (buyer)",
	Description: "Authenticated by the licence key (401 otherwise); frees the machine's slot. A fingerprint that is not active on the licence is 404.",
	Tags:        machineTags,
	Errors:      []int{http.StatusUnauthorized, http.StatusNotFound},
}

// machineDeactivate deactivates, by fingerprint, a machine of the licence whose key the
// buyer presents.
func (s *Server) machineDeactivate(ctx context.Context, in *MachineDeactivateInput) (*MachineOutput, error) {
	l, err := s.licenseByKey(ctx, in.Body.Key)
	if err != nil {
		return nil, problem(ctx, err)
	}
	active, err := s.queries.MachineGetActiveByFingerprint(ctx, tx(ctx), sql.MachineGetActiveByFingerprintParams{
		TenantID: l.TenantID, LicenseID: l.ID, Fingerprint: in.Body.Fingerprint,
	})
	if err != nil {
		return nil, problem(ctx, err)
	}
	m, err := core.MachineDeactivate(ctx, tx(ctx), s.step(ctx, buyer(ctx, l.ID)), core.MachineDeactivateParams{TenantID: l.TenantID, LicenseID: l.ID, ID: active.ID})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &MachineOutput{Status: http.StatusOK, Body: machineFrom(m)}, nil
}

// machineActivated is the answer of an activation: 201 with the machine it activated, 200
// with the machine of a fingerprint already active.
func machineActivated(m sql.Machine, created bool) *MachineOutput {
	out := &MachineOutput{Status: http.StatusOK, Body: machineFrom(m)}
	if created {
		out.Status = http.StatusCreated
	}
	return out
}
