package api

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/internal/core"
	"github.com/tessera/tessera/sql"
)

// Product is something a tenant sells; its policies are the tiers it is sold in.
type Product struct {
	ID         uuid.UUID  `json:"id"`
	Slug       string     `json:"slug" example:"photo-editor"`
	Name       string     `json:"name" example:"Photo Editor"`
	CreatedAt  time.Time  `json:"created_at"`
	UpdatedAt  time.Time  `json:"updated_at"`
	ArchivedAt *time.Time `json:"archived_at,omitempty" doc:"When the product was archived; absent while it is live."`
}

func productFrom(p sql.Product) Product {
	return Product{ID: p.ID, Slug: p.Slug, Name: p.Name, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt, ArchivedAt: p.ArchivedAt}
}

// ProductRelease is a released build of a product; a perpetual licence covers the releases
// made before its subscription ended.
type ProductRelease struct {
	ID         uuid.UUID `json:"id"`
	ProductID  uuid.UUID `json:"product_id"`
	Version    string    `json:"version" example:"2.4.0"`
	ReleasedAt time.Time `json:"released_at"`
	CreatedAt  time.Time `json:"created_at"`
}

func productReleaseFrom(r sql.ProductRelease) ProductRelease {
	return ProductRelease{ID: r.ID, ProductID: r.ProductID, Version: r.Version, ReleasedAt: r.ReleasedAt, CreatedAt: r.CreatedAt}
}

// ProductCreateInput is a new product.
type ProductCreateInput struct {
	Body struct {
		Slug string `json:"slug" pattern:"^[a-z0-9][a-z0-9._-]{0,99}$" example:"photo-editor" doc:"Lowercase letters, digits, '.', '_' and '-', starting with a letter or digit; at most 100. Unique among the tenant's products; cannot change."`
		Name string `json:"name" minLength:"1" maxLength:"200" example:"Photo Editor"`
	}
}

// ProductUpdateInput changes a product; fields left out keep their value.
type ProductUpdateInput struct {
	ID   uuid.UUID `path:"id"`
	Body struct {
		Name *string `json:"name,omitempty" minLength:"1" maxLength:"200" example:"Photo Editor Pro"`
	}
}

// ProductListInput pages through products.
type ProductListInput struct {
	PageParams
	IncludeArchived bool `query:"include_archived" doc:"Include archived products."`
}

// ProductIDInput names one product.
type ProductIDInput struct {
	ID uuid.UUID `path:"id"`
}

// ProductOutput is one product.
type ProductOutput struct {
	Body Product
}

// ProductListOutput is a page of products.
type ProductListOutput struct {
	Body Page[Product]
}

// ProductReleaseCreateInput is a new release of a product.
type ProductReleaseCreateInput struct {
	ID   uuid.UUID `path:"id"`
	Body struct {
		Version    string     `json:"version" minLength:"1" maxLength:"100" example:"2.4.0" doc:"Unique among the product's releases."`
		ReleasedAt *time.Time `json:"released_at,omitempty" example:"2026-01-15T12:00:00Z" doc:"When the build was released; default now."`
	}
}

// ProductReleaseListInput pages through a product's releases.
type ProductReleaseListInput struct {
	ID uuid.UUID `path:"id"`
	PageParams
}

// ProductReleaseOutput is one release.
type ProductReleaseOutput struct {
	Body ProductRelease
}

// ProductReleaseListOutput is a page of releases.
type ProductReleaseListOutput struct {
	Body Page[ProductRelease]
}

// productConstraints words the product tables' constraint violations.
var productConstraints = map[string]string{
	"products_slug_key":            "a product with this slug already exists",
	"product_releases_version_key": "this product already has a release with this version",
}

func (s *Server) registerProducts() {
	huma.Register(s.api, adminOperation(productCreateOperation), s.productCreate)
	huma.Register(s.api, adminOperation(productGetOperation), s.productGet)
	huma.Register(s.api, adminOperation(productListOperation), s.productList)
	huma.Register(s.api, adminOperation(productUpdateOperation), s.productUpdate)
	huma.Register(s.api, adminOperation(productArchiveOperation), s.productArchive)
	huma.Register(s.api, adminOperation(productReleaseCreateOperation), s.productReleaseCreate)
	huma.Register(s.api, adminOperation(productReleaseListOperation), s.productReleaseList)
}

var productTags = []string{"Products"}

var productCreateOperation = huma.Operation{
	OperationID:   "product-create",
	Method:        http.MethodPost,
	Path:          "/v1/admin/products",
	Summary:       "Create a product",
	Description:   "A taken slug is 409.",
	Tags:          productTags,
	DefaultStatus: http.StatusCreated,
	Errors:        []int{http.StatusConflict},
}

// productCreate creates a product of the caller's tenant.
func (s *Server) productCreate(ctx context.Context, in *ProductCreateInput) (*ProductOutput, error) {
	product, err := core.ProductCreate(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.ProductCreateParams{
		TenantID: tenantID(ctx), Slug: in.Body.Slug, Name: in.Body.Name, Sent: in.Body,
	})
	if err != nil {
		return nil, problem(ctx, constraintError(err, productConstraints))
	}
	return &ProductOutput{Body: productFrom(product)}, nil
}

var productGetOperation = huma.Operation{
	OperationID: "product-get",
	Method:      http.MethodGet,
	Path:        "/v1/admin/products/{id}",
	Summary:     "Read a product",
	Description: "Archived products can still be read.",
	Tags:        productTags,
	Errors:      []int{http.StatusNotFound},
}

// productGet reads one product.
func (s *Server) productGet(ctx context.Context, in *ProductIDInput) (*ProductOutput, error) {
	product, err := s.product(ctx, in.ID)
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &ProductOutput{Body: productFrom(product)}, nil
}

var productListOperation = huma.Operation{
	OperationID: "product-list",
	Method:      http.MethodGet,
	Path:        "/v1/admin/products",
	Summary:     "List products, oldest first",
	Description: "Archived products are left out unless include_archived=true.",
	Tags:        productTags,
}

// productList reads a page of products.
func (s *Server) productList(ctx context.Context, in *ProductListInput) (*ProductListOutput, error) {
	after, fetch := in.cursor()
	rows, err := s.queries.ProductList(ctx, s.conn(ctx), sql.ProductListParams{
		TenantID: tenantID(ctx), IncludeArchived: in.IncludeArchived, After: after, RowLimit: fetch,
	})
	if err != nil {
		return nil, problem(ctx, fmt.Errorf("list products: %w", err))
	}
	return &ProductListOutput{Body: page(rows, fetch, productFrom, func(p sql.Product) uuid.UUID { return p.ID })}, nil
}

var productUpdateOperation = huma.Operation{
	OperationID: "product-update",
	Method:      http.MethodPatch,
	Path:        "/v1/admin/products/{id}",
	Summary:     "Update a product",
	Description: "Fields left out keep their value. The slug cannot change.",
	Tags:        productTags,
	Errors:      []int{http.StatusNotFound},
}

// productUpdate changes the fields of a product that the request sends.
func (s *Server) productUpdate(ctx context.Context, in *ProductUpdateInput) (*ProductOutput, error) {
	product, err := core.ProductUpdate(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.ProductUpdateParams{
		TenantID: tenantID(ctx), ID: in.ID, Name: in.Body.Name, Sent: in.Body,
	})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &ProductOutput{Body: productFrom(product)}, nil
}

var productArchiveOperation = huma.Operation{
	OperationID: "product-archive",
	Method:      http.MethodPost,
	Path:        "/v1/admin/products/{id}/archive",
	Summary:     "Archive a product",
	Description: "An archived product leaves default lists; it can still be read, and its policies, releases " +
		"and the licences on them are unaffected. Archiving an archived product is 409.",
	Tags:   productTags,
	Errors: []int{http.StatusNotFound, http.StatusConflict},
}

// productArchive archives a product.
func (s *Server) productArchive(ctx context.Context, in *ProductIDInput) (*ProductOutput, error) {
	product, err := core.ProductArchive(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.ProductArchiveParams{TenantID: tenantID(ctx), ID: in.ID})
	if err != nil {
		return nil, problem(ctx, err)
	}
	return &ProductOutput{Body: productFrom(product)}, nil
}

var productReleaseCreateOperation = huma.Operation{
	OperationID:   "product-release-create",
	Method:        http.MethodPost,
	Path:          "/v1/admin/products/{id}/releases",
	Summary:       "Record a release of a product",
	Description:   "Releases decide which builds a perpetual licence covers. A version already recorded is 409.",
	Tags:          productTags,
	DefaultStatus: http.StatusCreated,
	Errors:        []int{http.StatusNotFound, http.StatusConflict},
}

// productReleaseCreate records a release of a product.
func (s *Server) productReleaseCreate(ctx context.Context, in *ProductReleaseCreateInput) (*ProductReleaseOutput, error) {
	release, err := core.ProductReleaseCreate(ctx, tx(ctx), s.step(ctx, actor(ctx)), core.ProductReleaseCreateParams{
		TenantID: tenantID(ctx), ProductID: in.ID, Version: in.Body.Version, ReleasedAt: in.Body.ReleasedAt,
	})
	if err != nil {
		return nil, problem(ctx, constraintError(err, productConstraints))
	}
	return &ProductReleaseOutput{Body: productReleaseFrom(release)}, nil
}

var productReleaseListOperation = huma.Operation{
	OperationID: "product-release-list",
	Method:      http.MethodGet,
	Path:        "/v1/admin/products/{id}/releases",
	Summary:     "List a product's releases, latest released first",
	Tags:        productTags,
	Errors:      []int{http.StatusNotFound},
}

// productReleaseList reads a page of a product's releases.
func (s *Server) productReleaseList(ctx context.Context, in *ProductReleaseListInput) (*ProductReleaseListOutput, error) {
	if _, err := s.product(ctx, in.ID); err != nil {
		return nil, problem(ctx, err)
	}
	after, fetch := in.cursor()
	rows, err := s.queries.ProductReleaseList(ctx, s.conn(ctx), sql.ProductReleaseListParams{
		TenantID: tenantID(ctx), ProductID: in.ID, After: after, RowLimit: fetch,
	})
	if err != nil {
		return nil, problem(ctx, fmt.Errorf("list releases of product %s: %w", in.ID, err))
	}
	return &ProductReleaseListOutput{Body: page(rows, fetch, productReleaseFrom, func(r sql.ProductRelease) uuid.UUID { return r.ID })}, nil
}

// product reads one of the caller's products; an unknown one is ErrNotFound.
func (s *Server) product(ctx context.Context, id uuid.UUID) (sql.Product, error) {
	product, err := s.queries.ProductGet(ctx, s.conn(ctx), sql.ProductGetParams{TenantID: tenantID(ctx), ID: id})
	return product, notFound(err, "product", id)
}
