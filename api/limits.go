package api

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"
)

// Bounds of every error answer, whatever the request: an error lists at most
// maxErrorsListed errors and says how many more there were, and each text it echoes is
// clipped, so that no problem+json body exceeds maxErrorBody bytes.
const (
	maxErrorsListed  = 20
	maxErrorDetail   = 1024 // encoded bytes of the problem's detail
	maxErrorMessage  = 512  // encoded bytes of one error's message
	maxErrorLocation = 256  // encoded bytes of one error's location (it can hold a client's keys)
	maxErrorValue    = 256  // encoded bytes of the value one error echoes; larger values are left out
	maxErrorBody     = 64 << 10
)

// boundErrors is the Huma transformer that keeps every problem answer bounded: Huma's own
// validation errors (one per bad item, each echoing its value, or the whole body when it is
// not JSON) as well as Tessera's. Answers that are not problems pass unchanged.
func boundErrors(_ huma.Context, _ string, v any) (any, error) {
	model, ok := v.(*Problem)
	if !ok {
		return v, nil
	}
	bounded := *model
	bounded.Detail = clip(model.Detail, maxErrorDetail)
	if n := len(model.Errors); n > maxErrorsListed {
		bounded.Detail = clip(bounded.Detail, maxErrorDetail-64) +
			fmt.Sprintf(" (%d errors; the first %d are listed)", n, maxErrorsListed)
	}
	bounded.Errors = make([]*huma.ErrorDetail, 0, min(len(model.Errors), maxErrorsListed))
	for _, e := range model.Errors[:min(len(model.Errors), maxErrorsListed)] {
		bounded.Errors = append(bounded.Errors, &huma.ErrorDetail{
			Message:  clip(e.Message, maxErrorMessage),
			Location: clip(e.Location, maxErrorLocation),
			Value:    smallValue(e.Value),
		})
	}
	return &bounded, nil
}

// clip cuts s so that its JSON encoding (as encoding/json writes it, quotes included) takes
// at most max bytes, at a character boundary, marking the cut with "…".
func clip(s string, max int) string {
	if 2+encodedSize(s) <= max {
		return s
	}
	size := 2 + len("…")
	for i := 0; i < len(s); {
		r, width := utf8.DecodeRuneInString(s[i:])
		if size += encodedRuneSize(r, width); size > max {
			return s[:i] + "…"
		}
		i += width
	}
	return s
}

// encodedSize is at least the number of bytes encoding/json writes for s, without quotes.
func encodedSize(s string) int {
	size := 0
	for i := 0; i < len(s); {
		r, width := utf8.DecodeRuneInString(s[i:])
		size += encodedRuneSize(r, width)
		i += width
	}
	return size
}

// encodedRuneSize is at least the number of bytes encoding/json writes for r, which takes
// width bytes in the string: an invalid byte becomes \ufffd, control characters and HTML's
// special characters a \u escape.
func encodedRuneSize(r rune, width int) int {
	switch {
	case r == utf8.RuneError && width == 1:
		return 6
	case r == '"' || r == '\\' || r == '\n' || r == '\r' || r == '\t':
		return 2
	case r < 0x20 || r == '<' || r == '>' || r == '&' || r == '\u2028' || r == '\u2029':
		return 6
	}
	return width
}

// smallValue returns v when its JSON encoding takes at most maxErrorValue bytes, a clipped
// copy when it is a longer string, and nil (the value is left out) otherwise. It never
// encodes more than maxErrorValue bytes' worth of a large array or object.
func smallValue(v any) any {
	if s, ok := v.(string); ok {
		return clip(s, maxErrorValue)
	}
	if _, fits := jsonSizeWithin(v, maxErrorValue); fits {
		return v
	}
	return nil
}

// jsonSizeWithin returns the encoded size of v when it is at most budget bytes, and whether
// it is; it stops as soon as the budget is spent.
func jsonSizeWithin(v any, budget int) (int, bool) {
	if budget <= 0 {
		return 0, false
	}
	switch v := v.(type) {
	case nil:
		return 4, budget >= 4
	case string:
		n := 2 + encodedSize(v[:min(len(v), budget)])
		return n, n <= budget && len(v) <= budget
	case []any:
		size := 2
		for _, item := range v {
			n, ok := jsonSizeWithin(item, budget-size)
			if !ok {
				return 0, false
			}
			size += n + 1
		}
		return size, size <= budget
	case map[string]any:
		size := 2
		for k, item := range v {
			n, ok := jsonSizeWithin(k, budget-size)
			if !ok {
				return 0, false
			}
			size += n + 2
			if n, ok = jsonSizeWithin(item, budget-size); !ok {
				return 0, false
			}
			size += n
		}
		return size, size <= budget
	}
	// A scalar or one of Tessera's own small values.
	b, err := json.Marshal(v)
	if err != nil { //lint:swallow a value that cannot be encoded cannot be answered: over any budget
		return 0, false
	}
	return len(b), len(b) <= budget
}
