package api

import (
	"encoding/json"
	"fmt"
	"reflect"

	"github.com/danielgtaylor/huma/v2"
)

// UniqueStrings is a request array of strings whose items must differ. Declare such arrays
// with this type, never with Huma's `uniqueItems` tag: Huma's validator (v2.37.2) answers N
// repeated items with N-1 errors that each echo the whole array (a 25 KB request became a
// 101 MB answer) and panics on object or array items, which it cannot hash. This type
// publishes `uniqueItems: true` in the OpenAPI document without Huma running that check, and
// checks it itself once Huma has validated the items as strings: one error, naming the first
// repeated item, in time linear in the array. The field's tags (maxItems, enum, doc) apply
// as to any array.
type UniqueStrings struct {
	// Items are the strings, in the order sent.
	Items []string
}

// Schema is an array of strings whose uniqueItems is an extension keyword: the document
// carries it verbatim, and Huma's validator does not read it.
func (UniqueStrings) Schema(r huma.Registry) *huma.Schema {
	s := r.Schema(reflect.TypeFor[[]string](), true, "")
	if s.Extensions == nil {
		s.Extensions = map[string]any{}
	}
	s.Extensions["uniqueItems"] = true
	return s
}

// UnmarshalJSON reads the array.
func (u *UniqueStrings) UnmarshalJSON(b []byte) error { return json.Unmarshal(b, &u.Items) }

// MarshalJSON writes the array (audit details of a request).
func (u UniqueStrings) MarshalJSON() ([]byte, error) { return json.Marshal(u.Items) }

// Resolve refuses the first repeated item, with one error at the array's location.
func (u *UniqueStrings) Resolve(_ huma.Context, prefix *huma.PathBuffer) []error {
	seen := make(map[string]int, len(u.Items))
	for i, item := range u.Items {
		if first, ok := seen[item]; ok {
			msg := fmt.Sprintf("items must be unique: item %d repeats item %d", i, first)
			return []error{&huma.ErrorDetail{Location: prefix.String(), Message: msg, Value: item}}
		}
		seen[item] = i
	}
	return nil
}
