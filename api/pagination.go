package api

import "github.com/google/uuid"

// Pagination limits of every list operation.
const (
	defaultPageLimit = 50
	maxPageLimit     = 200
)

// PageParams are the cursor-pagination query parameters of every list operation.
type PageParams struct {
	Limit int    `query:"limit" minimum:"1" maximum:"200" default:"50" doc:"Maximum number of items to return."`
	After string `query:"after" format:"uuid" doc:"The next_cursor of the previous page; omit it for the first page."`
}

// cursor returns the parsed after cursor (nil for the first page) and the number of rows to
// fetch: one more than the limit, to learn whether another page follows.
func (p PageParams) cursor() (*uuid.UUID, int32) {
	limit := p.Limit
	if limit <= 0 || limit > maxPageLimit {
		limit = defaultPageLimit
	}
	var after *uuid.UUID
	if id, err := uuid.Parse(p.After); err == nil {
		after = &id
	}
	return after, int32(limit + 1)
}

// Page is one page of a list.
type Page[T any] struct {
	Items      []T    `json:"items" nullable:"false"`
	NextCursor string `json:"next_cursor,omitempty" format:"uuid" doc:"Pass as after to get the next page; absent on the last page."`
}

// page converts fetched rows (up to limit+1) into a page, using id to make the cursor.
func page[R, T any](rows []R, fetch int32, convert func(R) T, id func(R) uuid.UUID) Page[T] {
	return pageBy(rows, fetch, convert, func(r R) string { return id(r).String() })
}

// pageBy is page for rows whose cursor is not a UUID: cursor makes it from the last row.
func pageBy[R, T any](rows []R, fetch int32, convert func(R) T, cursor func(R) string) Page[T] {
	p := Page[T]{Items: make([]T, 0, len(rows))}
	if len(rows) == int(fetch) {
		rows = rows[:len(rows)-1]
		p.NextCursor = cursor(rows[len(rows)-1])
	}
	for _, r := range rows {
		p.Items = append(p.Items, convert(r))
	}
	return p
}
