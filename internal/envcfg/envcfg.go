// Package envcfg loads a configuration struct from environment variables
// with github.com/sethvargo/go-envconfig, and makes every error name the
// variable (envconfig names the Go field, which an operator never sees).
package envcfg

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/sethvargo/go-envconfig"
)

// Load fills target (a pointer to a struct with `env` tags) from lookup.
// A variable set to the empty string counts as unset, so `HOME_LAT=` in a
// deploy file is reported as missing rather than read as 0.
func Load(ctx context.Context, lookup envconfig.Lookuper, target any) error {
	nonEmpty := envconfig.LookuperFunc(func(key string) (string, bool) {
		v, ok := lookup.Lookup(key)
		return v, ok && v != ""
	})
	err := envconfig.ProcessWith(ctx, &envconfig.Config{Target: target, Lookuper: nonEmpty})
	if err == nil {
		return nil
	}
	msg := err.Error()
	// Longest field paths first, so "Charging: HomeLat" wins over "Charging".
	paths := fieldPaths(reflect.TypeOf(target).Elem(), "")
	keys := make([]string, 0, len(paths))
	for k := range paths {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return len(keys[i]) > len(keys[j]) })
	for _, path := range keys {
		if strings.HasPrefix(msg, path+": ") {
			return fmt.Errorf("%s: %s", paths[path], strings.TrimPrefix(msg, path+": "))
		}
	}
	return err
}

// Vars lists every variable a configuration struct reads, with whether it
// is required (no default); the deploy tests check the YAMLs against it.
func Vars(t reflect.Type) map[string]bool {
	out := map[string]bool{}
	var walk func(reflect.Type)
	walk = func(t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("env")
			if tag == "" {
				if f.Type.Kind() == reflect.Struct {
					walk(f.Type)
				}
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			out[strings.TrimSpace(name)] = strings.Contains(opts, "required")
		}
	}
	walk(t)
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
