package fleet

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// Lenient JSON leaves. Tesla's answers vary by firmware, model and region:
// fields go missing, turn null, arrive as 80.0 where 80 was expected, or as
// strings. One odd field must not cost us the whole answer, so these types
// never fail: a value they cannot read is simply absent (ok == false). Only
// JSON that is not JSON at all makes a decode fail.

type jInt struct {
	v  int64
	ok bool
}

func (j *jInt) UnmarshalJSON(b []byte) error {
	*j = jInt{}
	s, ok := scalarText(b)
	if !ok {
		return nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		j.v, j.ok = n, true
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < -(1<<62) || f > 1<<62 {
		return nil
	}
	j.v, j.ok = int64(math.Round(f)), true
	return nil
}

// int returns the value as an int, clamped to the int range.
func (j jInt) int() int {
	if j.v > math.MaxInt {
		return math.MaxInt
	}
	if j.v < math.MinInt {
		return math.MinInt
	}
	return int(j.v)
}

type jFloat struct {
	v  float64
	ok bool
}

func (j *jFloat) UnmarshalJSON(b []byte) error {
	*j = jFloat{}
	s, ok := scalarText(b)
	if !ok {
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	j.v, j.ok = f, true
	return nil
}

type jBool struct {
	v  bool
	ok bool
}

func (j *jBool) UnmarshalJSON(b []byte) error {
	*j = jBool{}
	switch string(b) {
	case "true":
		j.v, j.ok = true, true
	case "false":
		j.ok = true
	}
	return nil
}

type jString struct {
	v  string
	ok bool
}

func (j *jString) UnmarshalJSON(b []byte) error {
	*j = jString{}
	if len(b) == 0 || b[0] != '"' {
		return nil
	}
	var s string
	if json.Unmarshal(b, &s) == nil {
		j.v, j.ok = s, true
	}
	return nil
}

// scalarText returns the text of a JSON number, or of a string holding one.
func scalarText(b []byte) (string, bool) {
	if len(b) == 0 {
		return "", false
	}
	switch c := b[0]; {
	case c == '-' || (c >= '0' && c <= '9'):
		return string(b), true
	case c == '"':
		var s string
		if json.Unmarshal(b, &s) != nil {
			return "", false
		}
		s = strings.TrimSpace(s)
		// Only plain decimal text: strconv also reads "Inf", "0x1p3", "1_0".
		for i := 0; i < len(s); i++ {
			if !strings.ContainsRune("0123456789+-.eE", rune(s[i])) {
				return "", false
			}
		}
		return s, s != ""
	}
	return "", false
}

// jObject holds a nested object, or nil when the value is absent, null or
// not an object.
type jObject[T any] struct{ v *T }

func (o *jObject[T]) UnmarshalJSON(b []byte) error {
	o.v = nil
	if len(b) == 0 || b[0] != '{' {
		return nil
	}
	var t T
	if json.Unmarshal(b, &t) != nil {
		return nil
	}
	o.v = &t
	return nil
}

// jList holds the object elements of an array; other elements are skipped.
// ok is false when the value is absent or not an array.
type jList[T any] struct {
	v  []T
	ok bool
}

func (l *jList[T]) UnmarshalJSON(b []byte) error {
	*l = jList[T]{}
	if len(b) == 0 || b[0] != '[' {
		return nil
	}
	var raw []json.RawMessage
	if json.Unmarshal(b, &raw) != nil {
		return nil
	}
	l.ok = true
	for _, r := range raw {
		if len(r) == 0 || r[0] != '{' {
			continue
		}
		var t T
		if json.Unmarshal(r, &t) == nil {
			l.v = append(l.v, t)
		}
	}
	return nil
}
