// Package envcfg loads a configuration struct from environment variables
// with github.com/sethvargo/go-envconfig, and makes every error name the
// variable (envconfig names the Go field, which an operator never sees).
// It also holds the sections the binaries share (sections.go, tesla.go), so
// that they read the same variables with the same defaults and reject the
// same mistakes with the same words.
package envcfg

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/sethvargo/go-envconfig"
)

// VarError is a problem with one variable's value. Callers that show the
// variable differently (fleetctl adds the flag that sets it) find it with
// errors.As.
type VarError struct {
	Var string // the variable's name, e.g. TESLA_FLEET_API_URL
	Err error  // what is wrong with it
}

func (e *VarError) Error() string { return e.Var + ": " + e.Err.Error() }
func (e *VarError) Unwrap() error { return e.Err }

// Errorf is a VarError for the variable name.
func Errorf(name, format string, args ...any) error {
	return &VarError{Var: name, Err: fmt.Errorf(format, args...)}
}

// Validator is a configuration that checks the values it was given. It
// reports every problem (errors.Join), and changes nothing.
type Validator interface {
	Validate() error
}

// Load fills target (a pointer to a struct with `env` tags) from lookup
// and validates it. A variable set to the empty string counts as unset, so
// `HOME_LAT=` in a deploy file is reported as missing rather than read as 0.
//
// Every problem is reported at once (errors.Join), each naming its
// variable: a value that does not parse is left at its default so that
// the others are still read, and a missing required one is stood in for.
// Validate runs only when every value was read, since a check of a stand-in
// would report what the operator never wrote.
func Load(ctx context.Context, lookup envconfig.Lookuper, target Validator) error {
	v := reflect.ValueOf(target)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("envcfg: the target must be a pointer to a struct, not %T", target)
	}
	paths := fieldPaths(v.Elem().Type(), "")
	initial := reflect.New(v.Elem().Type()).Elem()
	initial.Set(v.Elem())

	unparsable := map[string]bool{} // read as unset: their defaults apply
	missing := map[string]bool{}    // required and unset: read as "0"
	var problems []error
	for { // each failed pass sets one more variable aside, or returns
		err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: target, Lookuper: passLookuper(lookup, unparsable, missing)})
		if err == nil {
			break
		}
		name, problem := named(err, paths)
		problems = append(problems, problem)
		switch {
		case name == "" || unparsable[name] || missing[name]:
			// Not a value's fault (a bad tag), or a stand-in that does not
			// parse either: nothing more can be read.
			return errors.Join(problems...)
		case errors.Is(err, envconfig.ErrMissingRequired):
			missing[name] = true
		default:
			unparsable[name] = true
		}
		v.Elem().Set(initial)
	}
	if len(missing) > 0 {
		return errors.Join(problems...)
	}
	return errors.Join(append(problems, target.Validate())...)
}

// passLookuper is lookup with the empty string as unset, the unparsable
// variables unset and the missing ones standing in as "0" (which every
// scalar type parses).
func passLookuper(lookup envconfig.Lookuper, unparsable, missing map[string]bool) envconfig.Lookuper {
	return envconfig.LookuperFunc(func(key string) (string, bool) {
		switch {
		case missing[key]:
			return "0", true
		case unparsable[key]:
			return "", false
		}
		v, ok := lookup.Lookup(key)
		return v, ok && v != ""
	})
}

// named turns envconfig's error, which starts with the field path
// ("Charging: Home: Lat: …"), into a VarError naming the variable, and
// returns the variable's name too ("" if the error names none).
func named(err error, paths map[string]string) (string, error) {
	msg := err.Error()
	// Longest field paths first, so "Charging: HomeLat" wins over "Charging".
	keys := make([]string, 0, len(paths))
	for k := range paths {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, path := range keys {
		rest, ok := strings.CutPrefix(msg, path+": ")
		if !ok {
			continue
		}
		// envconfig wraps once per path element; unwrapped that often, the
		// error is the cause itself (errors.Is still finds envconfig's kinds).
		inner := err
		for range strings.Count(path, ": ") + 1 {
			if inner = errors.Unwrap(inner); inner == nil {
				break
			}
		}
		if inner == nil || inner.Error() != rest {
			inner = errors.New(rest)
		}
		return paths[path], &VarError{Var: paths[path], Err: inner}
	}
	return "", err
}

// Problems lists the problems in err one by one: the errors joined in it
// (errors.Join), at any depth.
func Problems(err error) []error {
	if err == nil {
		return nil
	}
	joined, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range joined.Unwrap() {
		out = append(out, Problems(e)...)
	}
	return out
}

// Var is one variable a configuration struct reads.
type Var struct {
	Name     string
	Default  string // as the tag gives it ("" for none)
	Required bool
}

// Describe lists the variables a configuration struct reads, in field
// order, walking the nested sections.
func Describe(t reflect.Type) []Var {
	var out []Var
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("env")
		if tag == "" {
			if f.Type.Kind() == reflect.Struct {
				out = append(out, Describe(f.Type)...)
			}
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		opts, def, _ := strings.Cut(opts, "default=") // the default is the tag's rest
		out = append(out, Var{Name: strings.TrimSpace(name), Default: def, Required: strings.Contains(opts, "required")})
	}
	return out
}

// Vars lists every variable a configuration struct reads, with whether it
// is required (no default); the deploy tests check the YAMLs against it.
func Vars(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	for _, v := range Describe(t) {
		out[v.Name] = v.Required
	}
	return out
}

// fieldPaths maps envconfig's error prefix ("Outer: Field") to the variable.
func fieldPaths(t reflect.Type, prefix string) map[string]string {
	out := map[string]string{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		path := f.Name
		if prefix != "" {
			path = prefix + ": " + f.Name
		}
		tag := f.Tag.Get("env")
		if tag == "" && f.Type.Kind() == reflect.Struct {
			for k, v := range fieldPaths(f.Type, path) {
				out[k] = v
			}
			continue
		}
		if name, _, _ := strings.Cut(tag, ","); name != "" {
			out[path] = strings.TrimSpace(name)
		}
	}
	return out
}
