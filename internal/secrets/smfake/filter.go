package smfake

import (
	"fmt"
	"strings"
	"time"
	"unicode"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// parseFilter compiles a ListSecretVersions filter in the API's
// list-filtering language (https://cloud.google.com/secret-manager/docs/filtering,
// the AIP-160 grammar): restrictions "field:value", "field=value",
// "field!=value", "<", ">", "<=", ">=", a value list "field:(A OR B)", the
// presence test "field:*", joined by AND (or juxtaposition), OR (which, as
// in AIP-160, binds tighter than AND), NOT or "-", and parentheses. Fields:
// name (":" matches a substring), state, create_time, destroy_time and
// scheduled_destroy_time (RFC 3339). The API supports no regular
// expressions ("~"); like anything else it does not know, that is
// INVALID_ARGUMENT. An empty filter matches everything.
func parseFilter(src string) (func(*secretmanagerpb.SecretVersion) bool, error) {
	if strings.TrimSpace(src) == "" {
		return func(*secretmanagerpb.SecretVersion) bool { return true }, nil
	}
	p := &filterParser{toks: tokenize(src)}
	m, err := p.expr()
	if err == nil && p.pos < len(p.toks) {
		err = p.fail("unexpected %q", p.toks[p.pos])
	}
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "invalid filter %q: %v", src, err)
	}
	return m, nil
}

type matcher = func(*secretmanagerpb.SecretVersion) bool

type filterParser struct {
	toks []string
	pos  int
}

type filterError string

func (e filterError) Error() string { return string(e) }

func (p *filterParser) fail(format string, a ...any) error {
	return filterError(strings.TrimSpace(fmt.Sprintf(format, a...)))
}

func (p *filterParser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos]
	}
	return ""
}

func (p *filterParser) next() string {
	t := p.peek()
	p.pos++
	return t
}

// expr: sequence of AND-joined (or juxtaposed) or-groups.
func (p *filterParser) expr() (matcher, error) {
	left, err := p.or()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if t == "" || t == ")" {
			return left, nil
		}
		if t == "AND" {
			p.next()
		}
		right, err := p.or()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(v *secretmanagerpb.SecretVersion) bool { return l(v) && right(v) }
	}
}

func (p *filterParser) or() (matcher, error) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.peek() == "OR" {
		p.next()
		right, err := p.unary()
		if err != nil {
			return nil, err
		}
		l := left
		left = func(v *secretmanagerpb.SecretVersion) bool { return l(v) || right(v) }
	}
	return left, nil
}

func (p *filterParser) unary() (matcher, error) {
	if t := p.peek(); t == "NOT" || t == "-" {
		p.next()
		m, err := p.unary()
		if err != nil {
			return nil, err
		}
		return func(v *secretmanagerpb.SecretVersion) bool { return !m(v) }, nil
	}
	if p.peek() == "(" {
		p.next()
		m, err := p.expr()
		if err != nil {
			return nil, err
		}
		if p.next() != ")" {
			return nil, p.fail("missing )")
		}
		return m, nil
	}
	return p.restriction()
}

var filterOps = map[string]bool{":": true, "=": true, "!=": true, "<": true, ">": true, "<=": true, ">=": true}

func (p *filterParser) restriction() (matcher, error) {
	field := p.next()
	if field == "" || isPunct(field) {
		return nil, p.fail("expected a field, got %q", field)
	}
	op := p.next()
	if op == "~" || op == "!~" {
		return nil, p.fail("regular expressions are not supported in the API")
	}
	if !filterOps[op] {
		return nil, p.fail("expected an operator after %s, got %q", field, op)
	}
	get, kind, ok := versionField(field)
	if !ok {
		return nil, p.fail("unknown field %q", field)
	}
	var values []string
	if op == ":" && p.peek() == "(" {
		p.next()
		for {
			v := p.next()
			if v == "" || isPunct(v) {
				return nil, p.fail("expected a value in the list for %s", field)
			}
			values = append(values, unquote(v))
			t := p.next()
			if t == ")" {
				break
			}
			if t != "OR" {
				return nil, p.fail("expected OR or ) in the list for %s, got %q", field, t)
			}
		}
	} else {
		v := p.next()
		if v == "" || isPunct(v) {
			return nil, p.fail("expected a value after %s%s", field, op)
		}
		values = []string{unquote(v)}
	}
	tests := make([]func(*secretmanagerpb.SecretVersion) bool, 0, len(values))
	for _, val := range values {
		t, err := compare(get, kind, op, val)
		if err != nil {
			return nil, p.fail("%s: %v", field, err)
		}
		tests = append(tests, t)
	}
	return func(v *secretmanagerpb.SecretVersion) bool {
		for _, t := range tests {
			if t(v) {
				return true
			}
		}
		return false
	}, nil
}

type fieldKind int

const (
	kindString fieldKind = iota
	kindEnum
	kindTime
)

// versionField reads a SecretVersion field by its filter name ("" when unset).
func versionField(name string) (func(*secretmanagerpb.SecretVersion) string, fieldKind, bool) {
	stamp := func(f func(*secretmanagerpb.SecretVersion) *timestamppb.Timestamp) func(*secretmanagerpb.SecretVersion) string {
		return func(v *secretmanagerpb.SecretVersion) string {
			if t := f(v); t != nil {
				return t.AsTime().UTC().Format(time.RFC3339Nano)
			}
			return ""
		}
	}
	switch name {
	case "name":
		return func(v *secretmanagerpb.SecretVersion) string { return v.GetName() }, kindString, true
	case "state":
		return func(v *secretmanagerpb.SecretVersion) string { return v.GetState().String() }, kindEnum, true
	case "create_time":
		return stamp((*secretmanagerpb.SecretVersion).GetCreateTime), kindTime, true
	case "destroy_time":
		return stamp((*secretmanagerpb.SecretVersion).GetDestroyTime), kindTime, true
	case "scheduled_destroy_time":
		return stamp((*secretmanagerpb.SecretVersion).GetScheduledDestroyTime), kindTime, true
	}
	return nil, 0, false
}

func compare(get func(*secretmanagerpb.SecretVersion) string, kind fieldKind, op, val string) (func(*secretmanagerpb.SecretVersion) bool, error) {
	if op == ":" && val == "*" {
		return func(v *secretmanagerpb.SecretVersion) bool { return get(v) != "" }, nil
	}
	switch kind {
	case kindEnum:
		if _, ok := secretmanagerpb.SecretVersion_State_value[strings.ToUpper(val)]; !ok {
			return nil, filterError("unknown state " + val)
		}
		want := strings.ToUpper(val)
		switch op {
		case ":", "=":
			return func(v *secretmanagerpb.SecretVersion) bool { return get(v) == want }, nil
		case "!=":
			return func(v *secretmanagerpb.SecretVersion) bool { return get(v) != want }, nil
		}
		return nil, filterError("operator " + op + " does not apply to an enum")
	case kindTime:
		t, err := time.Parse(time.RFC3339Nano, val)
		if err != nil {
			return nil, filterError("not an RFC 3339 time: " + val)
		}
		cmp := func(v *secretmanagerpb.SecretVersion) (int, bool) {
			s := get(v)
			if s == "" {
				return 0, false
			}
			got, _ := time.Parse(time.RFC3339Nano, s)
			return got.Compare(t), true
		}
		return func(v *secretmanagerpb.SecretVersion) bool {
			c, ok := cmp(v)
			if !ok {
				return op == "!="
			}
			switch op {
			case ":", "=":
				return c == 0
			case "!=":
				return c != 0
			case "<":
				return c < 0
			case ">":
				return c > 0
			case "<=":
				return c <= 0
			default:
				return c >= 0
			}
		}, nil
	default:
		switch op {
		case ":":
			return func(v *secretmanagerpb.SecretVersion) bool { return strings.Contains(get(v), val) }, nil
		case "=":
			return func(v *secretmanagerpb.SecretVersion) bool { return get(v) == val }, nil
		case "!=":
			return func(v *secretmanagerpb.SecretVersion) bool { return get(v) != val }, nil
		}
		return nil, filterError("operator " + op + " does not apply to a string")
	}
}

// tokenize splits a filter into words, quoted strings and punctuation.
func tokenize(src string) []string {
	var out []string
	rs := []rune(src)
	for i := 0; i < len(rs); {
		if unicode.IsSpace(rs[i]) {
			i++
			continue
		}
		var tok string
		tok, i = nextToken(rs, i, out)
		out = append(out, tok)
	}
	return out
}

// nextToken reads the token starting at rs[i], which is not a space, and
// returns it with the index just after it. prev, the tokens before it,
// tells a leading "-" (NOT) from the start of a word such as "-1".
func nextToken(rs []rune, i int, prev []string) (string, int) {
	r := rs[i]
	switch {
	case strings.ContainsRune("():~", r):
		return string(r), i + 1
	case strings.ContainsRune("!<>=", r):
		return operator(rs, i)
	case r == '"':
		return quoted(rs, i)
	case r == '-' && negationMayFollow(prev):
		return "-", i + 1
	default:
		return word(rs, i)
	}
}

// operator reads "!", "<", ">" or "=", or the two-rune "!=", "<=", ">=",
// "==" and "!~".
func operator(rs []rune, i int) (string, int) {
	r := rs[i]
	if i+1 < len(rs) && (rs[i+1] == '=' || (r == '!' && rs[i+1] == '~')) {
		return string(rs[i : i+2]), i + 2
	}
	return string(r), i + 1
}

// quoted reads a double-quoted string, keeping its quotes and backslash
// escapes (unquote removes them); an unterminated one runs to the end.
func quoted(rs []rune, i int) (string, int) {
	j := i + 1
	for j < len(rs) && rs[j] != '"' {
		if rs[j] == '\\' {
			j++
		}
		j++
	}
	return string(rs[i:min(j+1, len(rs))]), j + 1
}

// negationMayFollow reports whether a "-" after prev starts a negation: at
// the start, after "(" or after AND, OR or NOT.
func negationMayFollow(prev []string) bool {
	return len(prev) == 0 || prev[len(prev)-1] == "(" || isKeyword(prev[len(prev)-1])
}

// wordStops are the runes that end a word besides space.
const wordStops = "():<>=!~\""

// word reads a field name or a bare value. A time value holds colons, so
// a colon between two digits does not end it: "2021-01-01T00:00:00Z"
// stays whole, while "state:ENABLED" splits at its colon.
func word(rs []rune, i int) (string, int) {
	j := wordEnd(rs, i)
	for j > i && j+1 < len(rs) && rs[j] == ':' && unicode.IsDigit(rs[j-1]) && unicode.IsDigit(rs[j+1]) {
		j = wordEnd(rs, j+1)
	}
	return string(rs[i:j]), j
}

// wordEnd is the index of the first space or wordStops rune from j on.
func wordEnd(rs []rune, j int) int {
	for j < len(rs) && !unicode.IsSpace(rs[j]) && !strings.ContainsRune(wordStops, rs[j]) {
		j++
	}
	return j
}

func isKeyword(t string) bool { return t == "AND" || t == "OR" || t == "NOT" }

func isPunct(t string) bool {
	return t == "(" || t == ")" || filterOps[t] || t == "~" || t == "!~" || isKeyword(t)
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return strings.ReplaceAll(v[1:len(v)-1], `\"`, `"`)
	}
	return v
}
