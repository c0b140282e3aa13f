package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"
)

// This file builds request values from the served OpenAPI document's JSON schemas: valid
// ones, and hostile variants of them. The walker in hostile_test.go sends them.

// schema is a JSON schema as it appears in the OpenAPI document.
type schema = map[string]any

// raw is JSON text written verbatim into a request body: what encoding/json cannot produce
// (a lone surrogate escape, invalid UTF-8, -0, a number past float64).
type raw string

// encodeJSON writes v (decoded JSON values, json.Number and raw) as JSON, keys sorted.
func encodeJSON(v any) []byte {
	var buf bytes.Buffer
	var write func(v any)
	write = func(v any) {
		switch v := v.(type) {
		case raw:
			buf.WriteString(string(v))
		case map[string]any:
			keys := make([]string, 0, len(v))
			for k := range v {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			buf.WriteByte('{')
			for i, k := range keys {
				if i > 0 {
					buf.WriteByte(',')
				}
				key, _ := json.Marshal(k)
				buf.Write(key)
				buf.WriteByte(':')
				write(v[k])
			}
			buf.WriteByte('}')
		case []any:
			buf.WriteByte('[')
			for i, item := range v {
				if i > 0 {
					buf.WriteByte(',')
				}
				write(item)
			}
			buf.WriteByte(']')
		default:
			b, err := json.Marshal(v)
			if err != nil {
				panic(fmt.Sprintf("encode %T: %v", v, err))
			}
			buf.Write(b)
		}
	}
	write(v)
	return buf.Bytes()
}

// generator makes values for schemas of one document, with the walker's fixtures.
type generator struct {
	doc      map[string]any
	rng      *rand.Rand
	fixtures *fixtures
}

// resolve follows $ref and returns the schema it names.
func (g *generator) resolve(s schema) schema {
	for depth := 0; s != nil && depth < 10; depth++ {
		ref, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		s = g.doc
		for _, part := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			s, _ = s[part].(map[string]any)
		}
	}
	return s
}

// types returns the JSON types a schema admits, without null.
func types(s schema) []string {
	switch t := s["type"].(type) {
	case string:
		return []string{t}
	case []any:
		var out []string
		for _, v := range t {
			if v != "null" {
				out = append(out, v.(string))
			}
		}
		return out
	}
	if _, ok := s["properties"]; ok {
		return []string{"object"}
	}
	return nil
}

// valid returns a value valid against s; name is the property or parameter it is for,
// which selects a fixture (an existing id, the licence key, the tenant's slug).
func (g *generator) valid(s schema, name string) any {
	s = g.resolve(s)
	if s == nil {
		return "x"
	}
	for _, key := range []string{"oneOf", "anyOf"} {
		if alternatives, ok := s[key].([]any); ok && len(alternatives) > 0 {
			return g.valid(alternatives[g.rng.IntN(len(alternatives))].(map[string]any), name)
		}
	}
	t := types(s)
	if len(t) == 0 {
		return "x"
	}
	switch t[0] {
	case "object":
		return g.object(s)
	case "array":
		item, _ := s["items"].(map[string]any)
		n := 1 + g.rng.IntN(2)
		if maxItems, ok := s["maxItems"].(float64); ok && int(maxItems) < n {
			n = int(maxItems)
		}
		out := make([]any, 0, n)
		for i := 0; i < n; i++ {
			v := g.valid(item, strings.TrimSuffix(name, "s"))
			if s["uniqueItems"] == true && slices.ContainsFunc(out, func(o any) bool { return bytes.Equal(encodeJSON(o), encodeJSON(v)) }) {
				continue
			}
			out = append(out, v)
		}
		return out
	case "integer", "number":
		if v, ok := g.example(s); ok {
			return v
		}
		lo, hi := 1.0, 10.0
		if min, ok := s["minimum"].(float64); ok {
			lo = min
		}
		if max, ok := s["maximum"].(float64); ok && max < hi {
			hi = max
		}
		if hi < lo {
			hi = lo
		}
		return json.Number(strconv.FormatInt(int64(lo)+g.rng.Int64N(int64(hi-lo)+1), 10))
	case "boolean":
		return g.rng.IntN(2) == 0
	case "string":
		return g.str(s, name)
	}
	return nil
}

func (g *generator) object(s schema) map[string]any {
	out := map[string]any{}
	props, _ := s["properties"].(map[string]any)
	required := map[string]bool{}
	for _, r := range asSlice(s["required"]) {
		required[r.(string)] = true
	}
	names := make([]string, 0, len(props))
	for name := range props {
		names = append(names, name)
	}
	slices.Sort(names) // map order would make the walk unreproducible
	for _, name := range names {
		if required[name] || g.rng.IntN(2) == 0 {
			out[name] = g.valid(props[name].(map[string]any), name)
		}
	}
	return out
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

// example returns the schema's first example or enum value.
func (g *generator) example(s schema) (any, bool) {
	if enum := asSlice(s["enum"]); len(enum) > 0 {
		return number(enum[g.rng.IntN(len(enum))]), true
	}
	if examples := asSlice(s["examples"]); len(examples) > 0 {
		return number(examples[0]), true
	}
	return nil, false
}

// number turns decoded float64s back into JSON numbers as written.
func number(v any) any {
	if f, ok := v.(float64); ok {
		return json.Number(strconv.FormatFloat(f, 'f', -1, 64))
	}
	return v
}

// str returns a string valid for s: a fixture when name has one, else an example, else
// something that fits the format, pattern and length.
func (g *generator) str(s schema, name string) any {
	if v, ok := g.fixtures.byName(name, g.rng); ok {
		return v
	}
	if v, ok := g.example(s); ok && name != "email" && name != "slug" && name != "fingerprint" {
		return v
	}
	suffix := strings.ReplaceAll(uuid.NewString(), "-", "")[:10]
	switch s["format"] {
	case "uuid":
		return uuid.NewString()
	case "date-time":
		return "2030-01-01T00:00:00Z"
	case "date":
		return "2030-01-01"
	case "email":
		return "walker-" + suffix + "@example.com"
	case "uri":
		return "https://example.com/" + suffix
	}
	if name == "email" || strings.HasSuffix(name, "_email") {
		return "walker-" + suffix + "@example.com"
	}
	candidates := []string{"walker-" + suffix, "w" + suffix, "1.0." + strconv.Itoa(g.rng.IntN(1000)), "x"}
	if pattern, ok := s["pattern"].(string); ok {
		if re, err := regexp.Compile(pattern); err == nil {
			for _, c := range candidates {
				if re.MatchString(c) {
					return fit(s, c)
				}
			}
		}
	}
	return fit(s, candidates[0])
}

// fit pads or cuts v to the schema's length bounds.
func fit(s schema, v string) string {
	if min, ok := s["minLength"].(float64); ok && len(v) < int(min) {
		v += strings.Repeat("x", int(min)-len(v))
	}
	if max, ok := s["maxLength"].(float64); ok && len(v) > int(max) {
		v = v[:int(max)]
	}
	return v
}

// site is one place in a generated value that a mutation can change.
type site struct {
	name   string
	schema schema
	set    func(any)
	del    func() // nil at the root and in arrays
	value  any
}

// sites lists every place in v (generated for s): the root, each property, each item.
func (g *generator) sites(v any, s schema, name string, set func(any), del func()) []site {
	s = g.resolve(s)
	out := []site{{name: name, schema: s, set: set, del: del, value: v}}
	switch v := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			prop, _ := props[k].(map[string]any)
			out = append(out, g.sites(v[k], prop, k, func(x any) { v[k] = x }, func() { delete(v, k) })...)
		}
	case []any:
		item, _ := s["items"].(map[string]any)
		for i := range v {
			out = append(out, g.sites(v[i], item, name, func(x any) { v[i] = x }, nil)...)
		}
	}
	return out
}

// hostileValues are values that test one class of bad input each, for any site.
var hostileValues = []struct {
	note  string
	value func(valid any) any
}{
	{"wrong type: number", func(any) any { return json.Number("1") }},
	{"wrong type: boolean", func(any) any { return true }},
	{"wrong type: string", func(any) any { return "x" }},
	{"wrong type: object", func(any) any { return map[string]any{} }},
	{"wrong type: array", func(any) any { return []any{} }},
	{"null", func(any) any { return nil }},
	{"NUL in a string", func(any) any { return "a\x00b" }},
	{"lone surrogate", func(any) any { return raw(`"\ud800"`) }},
	{"lone low surrogate", func(any) any { return raw(`"x\udc00"`) }},
	{"invalid UTF-8", func(any) any { return raw("\"\xff\xfe\xc3\"") }},
	{"empty string", func(any) any { return "" }},
	{"huge string", func(any) any { return strings.Repeat("x", 100_000) }},
	{"long unicode string", func(any) any { return strings.Repeat("é", 5_000) }},
	{"2^63-1", func(any) any { return json.Number("9223372036854775807") }},
	{"2^63", func(any) any { return json.Number("9223372036854775808") }},
	{"-2^63", func(any) any { return json.Number("-9223372036854775808") }},
	{"-1", func(any) any { return json.Number("-1") }},
	{"1e308", func(any) any { return json.Number("1e308") }},
	{"-1e308", func(any) any { return json.Number("-1e308") }},
	{"1e400", func(any) any { return raw("1e400") }},
	{"-0", func(any) any { return raw("-0") }},
	{"fraction", func(any) any { return json.Number("0.5") }},
	{"2^31", func(any) any { return json.Number("2147483648") }},
	{"array of objects", func(any) any { return []any{map[string]any{}} }},
	{"nested array", func(any) any { return []any{[]any{"x"}} }},
	{"mixed array", func(any) any { return []any{json.Number("1"), true, map[string]any{}} }},
	{"many duplicates", func(valid any) any { return duplicates(valid, 2_000) }},
	{"many items", func(any) any {
		items := make([]any, 5_000)
		for i := range items {
			items[i] = strconv.Itoa(i)
		}
		return items
	}},
	{"deep array nesting", func(any) any { return raw(strings.Repeat("[", 5_000) + strings.Repeat("]", 5_000)) }},
	{"deep object nesting", func(any) any { return raw(strings.Repeat(`{"a":`, 2_000) + "1" + strings.Repeat("}", 2_000)) }},
	{"SQL text", func(any) any { return "'; DROP TABLE tenants; --" }},
	{"invalid uuid", func(any) any { return "00000000-0000-0000-0000-00000000000g" }},
	{"nil uuid", func(any) any { return "00000000-0000-0000-0000-000000000000" }},
}

// duplicates repeats the first item of an array value (or the value itself) n times.
func duplicates(valid any, n int) []any {
	item := valid
	if a, ok := valid.([]any); ok && len(a) > 0 {
		item = a[0]
	}
	out := make([]any, n)
	for i := range out {
		out[i] = item
	}
	return out
}

// hostileParams are values for path and query parameters, already escaped for a URL.
var hostileParams = []struct{ note, value string }{
	{"NUL", "%00"},
	{"NUL inside", "a%00b"},
	{"invalid UTF-8", "%FF%FE"},
	{"lone surrogate as UTF-8", "%ED%A0%80"},
	{"huge", strings.Repeat("x", 10_000)},
	{"empty", ""},
	{"-1", "-1"},
	{"2^63", "9223372036854775808"},
	{"1e308", "1e308"},
	{"not a uuid", "not-a-uuid"},
	{"nil uuid", "00000000-0000-0000-0000-000000000000"},
	{"random uuid", "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"},
	{"dot segments", "..%2F..%2Fadmin"},
	{"SQL text", "%27%20OR%201%3D1--"},
	{"spaces", "a%20b"},
}

// hostileHeaders are header values sent in place of a normal one.
var hostileHeaders = []struct{ name, note, value string }{
	{"Authorization", "huge bearer", "Bearer " + strings.Repeat("x", 16_000)},
	{"Authorization", "invalid UTF-8 bearer", "Bearer \xff\xfe"},
	{"Authorization", "bearer without key", "Bearer"},
	{"Authorization", "basic scheme", "Basic dXNlcjpwYXNz"},
	{"Authorization", "malformed key", "Bearer tsk_zzz_%00"},
	{"Authorization", "key-shaped garbage", "Bearer tsk_aaaaaaaa_" + strings.Repeat("b", 40)},
	{"Idempotency-Key", "invalid UTF-8", "\xff\xfe"},
	{"Idempotency-Key", "huge", strings.Repeat("k", 10_000)},
	{"Idempotency-Key", "over 255", strings.Repeat("k", 256)},
	{"Idempotency-Key", "spaces", "a b c"},
	{"Idempotency-Key", "percent NUL", "%00"},
	{"X-Request-Id", "invalid UTF-8", "\xff"},
	{"X-Request-Id", "huge", strings.Repeat("r", 10_000)},
	{"Accept", "CBOR", "application/cbor"},
	{"Accept", "XML", "application/xml"},
	{"Accept", "nothing acceptable", "image/png"},
	{"Content-Encoding", "gzip claimed", "gzip"},
}

// hostileContentTypes replace the body's media type.
var hostileContentTypes = []string{
	"", "text/plain", "application/xml", "application/x-www-form-urlencoded",
	"multipart/form-data; boundary=x", "application/json; charset=utf-16", "application/cbor",
	"application/problem+json", "application/x-ndjson", "\xff/\xfe",
}

// hostileBodies replace the whole body.
var hostileBodies = []struct{ note, body string }{
	{"empty body", ""},
	{"null body", "null"},
	{"array body", "[]"},
	{"string body", `"x"`},
	{"truncated JSON", `{"a":`},
	{"not JSON", "a=b&c=d"},
	{"invalid UTF-8 body", "\xff\xfe\xfd"},
	{"NUL body", "\x00\x00"},
	{"BOM", "\xef\xbb\xbf{}"},
	{"duplicate keys", `{"a":1,"a":2}`},
	{"deep nesting body", strings.Repeat("[", 10_000) + strings.Repeat("]", 10_000)},
	{"over the body limit", `{"x":"` + strings.Repeat("x", 1<<20+10) + `"}`},
	{"two JSON values", "{} {}"},
}
