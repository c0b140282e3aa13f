package api

import (
	"bytes"
	"encoding/json"
	"reflect"

	"github.com/danielgtaylor/huma/v2"
)

// Nullable is a PATCH field that can be left out (keep the current value), sent as null
// (clear it) or sent with a value. Declare it with `json:"name,omitzero" nullable:"true"`.
type Nullable[T any] struct {
	// Sent is true when the field was in the request.
	Sent bool
	// Null is true when the field was sent as null.
	Null bool
	// Value is the value sent, when Sent and not Null.
	Value T
}

// UnmarshalJSON records that the field was sent, and whether as null.
func (n *Nullable[T]) UnmarshalJSON(b []byte) error {
	n.Sent = true
	if bytes.Equal(b, []byte("null")) {
		n.Null = true
		return nil
	}
	return json.Unmarshal(b, &n.Value)
}

// MarshalJSON writes null or the value (audit details of an update).
func (n Nullable[T]) MarshalJSON() ([]byte, error) {
	if n.Null || !n.Sent {
		return []byte("null"), nil
	}
	return json.Marshal(n.Value)
}

// IsZero reports whether the field was left out, so that omitzero leaves it out again.
func (n Nullable[T]) IsZero() bool { return !n.Sent }

// Schema is the schema of T; the field's tags add nullability and limits.
func (n Nullable[T]) Schema(r huma.Registry) *huma.Schema {
	return r.Schema(reflect.TypeOf(n.Value), true, "")
}

// Ptr returns nil when the field is null or was left out, else a pointer to its value.
func (n Nullable[T]) Ptr() *T {
	if !n.Sent || n.Null {
		return nil
	}
	return &n.Value
}
