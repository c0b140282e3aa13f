package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"
)

// screenParams and screenBody check every string of a request once, before anything reads
// it: path parameters, query keys and values, header names and values (screenParams, before
// authentication reads the Authorization header), and the body (screenBody, after
// authentication, so that only admitted callers make Tessera read an admin operation's body).
// Text that Postgres cannot store, or that Go would silently change, is refused with a 422
// problem naming where it is:
//
//   - a NUL character (a raw byte, %00 in the URL, \u0000 in a JSON string),
//   - invalid UTF-8 (Go's JSON decoder would turn it into U+FFFD),
//   - in JSON bodies, a lone UTF-16 surrogate escape such as "\ud800", which is not a
//     character (Go would decode it to U+FFFD); a surrogate pair is one character and passes.
func (s *Server) screenParams(ctx huma.Context, next func(huma.Context)) {
	if location, msg := badParam(ctx); msg != "" {
		s.refuseText(ctx, location, msg)
		return
	}
	next(ctx)
}

// screenBody reads the body once, up to the operation's body limit (413 beyond it), checks
// its text and hands it on.
func (s *Server) screenBody(ctx huma.Context, next func(huma.Context)) {
	limit := ctx.Operation().MaxBodyBytes
	if limit <= 0 {
		limit = defaultMaxBodyBytes // Huma leaves it unset on raw-body operations
	}
	body, err := io.ReadAll(io.LimitReader(ctx.BodyReader(), limit+1))
	switch {
	case err != nil:
		s.writeErr(ctx, http.StatusBadRequest, "could not read the request body", err)
		return
	case int64(len(body)) > limit:
		s.writeErr(ctx, http.StatusRequestEntityTooLarge, fmt.Sprintf("the request body is larger than %d bytes", limit))
		return
	}
	isJSON := strings.Contains(ctx.Header("Content-Type"), "json") || ctx.Header("Content-Type") == ""
	if offset, msg := badText(body, isJSON); msg != "" {
		location := "body"
		if isJSON {
			location = jsonPathAt(body, int64(offset))
		}
		s.refuseText(ctx, location, fmt.Sprintf("%s at byte %d", msg, offset))
		return
	}
	next(&screenedContext{humaContext: ctx, body: body})
}

// refuseText answers a request whose text cannot be stored.
func (s *Server) refuseText(ctx huma.Context, location, msg string) {
	s.writeErr(ctx, http.StatusUnprocessableEntity, "text must be valid UTF-8 without NUL characters: "+msg,
		&huma.ErrorDetail{Location: location, Message: msg})
}

// writeErr writes a problem from middleware through Huma, so that boundErrors bounds it.
func (s *Server) writeErr(ctx huma.Context, status int, msg string, errs ...error) {
	if err := huma.WriteErr(s.api, ctx, status, msg, errs...); err != nil {
		requestInfoFrom(ctx.Context()).logger().WarnContext(ctx.Context(), "write problem", "error", err)
	}
}

// screenedContext hands on a body that screen has read.
type screenedContext struct {
	humaContext
	body []byte
}

func (c *screenedContext) BodyReader() io.Reader { return bytes.NewReader(c.body) }

// badParam finds the first bad string among path parameters, query keys and values, and
// headers, and says where it is.
func badParam(ctx huma.Context) (location, msg string) {
	for _, p := range ctx.Operation().Parameters {
		if p.In == "path" {
			if msg := badString(ctx.Param(p.Name)); msg != "" {
				return "path." + p.Name, msg
			}
		}
	}
	u := ctx.URL()
	query, _ := url.ParseQuery(u.RawQuery) // malformed pairs are dropped, as Huma drops them
	for key, values := range query {
		if msg := badString(key); msg != "" {
			return "query", "a query parameter's name has " + msg
		}
		for _, v := range values {
			if msg := badString(v); msg != "" {
				return "query." + key, msg
			}
		}
	}
	ctx.EachHeader(func(name, value string) {
		if msg != "" {
			return
		}
		if m := badString(name); m != "" {
			location, msg = "header", "a header's name has "+m
		} else if m := badString(value); m != "" {
			location, msg = "header."+name, m
		}
	})
	return location, msg
}

// badString says what is wrong with s: a NUL character or invalid UTF-8; "" when nothing.
func badString(s string) string {
	switch {
	case strings.IndexByte(s, 0) >= 0:
		return "a NUL character"
	case !utf8.ValidString(s):
		return "invalid UTF-8"
	}
	return ""
}

// badText finds the first NUL byte or invalid UTF-8 in body, and, when it is JSON, the first
// \u0000 or lone surrogate escape in its strings; it returns the offset and what it found,
// or "" when the body is clean. It is one pass over the body. In invalid JSON it may miss an
// escape; the JSON decoder then refuses the body anyway.
func badText(body []byte, isJSON bool) (int, string) {
	if i := bytes.IndexByte(body, 0); i >= 0 {
		return i, "a NUL byte"
	}
	if !utf8.Valid(body) {
		i := 0
		for i < len(body) {
			r, width := utf8.DecodeRune(body[i:])
			if r == utf8.RuneError && width == 1 {
				break
			}
			i += width
		}
		return i, "invalid UTF-8"
	}
	if !isJSON {
		return 0, ""
	}
	inString := false
	for i := 0; i < len(body); i++ {
		switch c := body[i]; {
		case !inString:
			inString = c == '"'
		case c == '"':
			inString = false
		case c == '\\' && i+1 < len(body) && body[i+1] == 'u':
			r, ok := hexEscape(body[i:])
			switch {
			case !ok:
				i++
			case r == 0:
				return i, `a NUL character (\u0000)`
			case utf16.IsSurrogate(r):
				if low, ok := hexEscape(body[i+6:]); ok && r < 0xdc00 && low >= 0xdc00 && low <= 0xdfff {
					i += 11 // a surrogate pair: one character
					continue
				}
				return i, fmt.Sprintf(`a lone UTF-16 surrogate escape (\u%04x), not a character`, r)
			default:
				i += 5
			}
		case c == '\\':
			i++ // an escaped character, perhaps a quote
		}
	}
	return 0, ""
}

// hexEscape decodes a \uXXXX escape at the start of b.
func hexEscape(b []byte) (rune, bool) {
	if len(b) < 6 || b[0] != '\\' || b[1] != 'u' {
		return 0, false
	}
	var r rune
	for _, c := range b[2:6] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// jsonPathAt names the string of a JSON body that holds offset, as Huma names locations
// (body.items[3].name); "body" when the body is not JSON or the offset is outside strings.
func jsonPathAt(body []byte, offset int64) string {
	type frame struct {
		object    bool
		expectKey bool
		key       string
		index     int
	}
	var stack []frame
	path := func() string {
		var b strings.Builder
		b.WriteString("body")
		for _, f := range stack {
			if f.object {
				b.WriteString("." + f.key)
			} else {
				fmt.Fprintf(&b, "[%d]", f.index)
			}
		}
		return b.String()
	}
	valueDone := func() {
		if n := len(stack); n > 0 && stack[n-1].object {
			stack[n-1].expectKey = true
		}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := dec.Token()
		if err != nil { //lint:swallow the decoder reports the error itself; this only locates it
			return "body"
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
			valueDone()
			continue
		}
		n := len(stack)
		if n > 0 && stack[n-1].object && stack[n-1].expectKey {
			stack[n-1].key, _ = tok.(string)
			stack[n-1].expectKey = false
			if dec.InputOffset() > offset {
				return path()
			}
			continue
		}
		if n > 0 && !stack[n-1].object {
			stack[n-1].index++
		}
		if d, ok := tok.(json.Delim); ok {
			stack = append(stack, frame{object: d == '{', expectKey: d == '{', index: -1})
			continue
		}
		if _, ok := tok.(string); ok && dec.InputOffset() > offset {
			return path()
		}
		valueDone()
	}
}
