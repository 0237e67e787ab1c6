package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// figure is one measured number.
type figure struct {
	name    string
	value   float64
	unit    string
	meaning string
}

func (f figure) formatted() string {
	switch {
	case f.unit == "USD" || f.unit == "PLN":
		return strconv.FormatFloat(f.value, 'f', 2, 64)
	case f.value == float64(int64(f.value)):
		return strconv.FormatInt(int64(f.value), 10)
	case f.value < 1:
		return strconv.FormatFloat(f.value, 'f', 3, 64)
	default:
		return strconv.FormatFloat(f.value, 'f', 1, 64)
	}
}

// report collects figures, printing each as it comes, and notes (the
// assumptions behind them) for the README.
type report struct {
	out     io.Writer
	figures []figure
	notes   []string
}

func (r *report) add(name string, value float64, unit, meaning string) {
	f := figure{name: name, value: value, unit: unit, meaning: meaning}
	r.figures = append(r.figures, f)
	fmt.Fprintf(r.out, "bench %s %s %s\n", f.name, f.formatted(), f.unit)
}

func (r *report) note(format string, a ...any) { r.notes = append(r.notes, fmt.Sprintf(format, a...)) }

// markdown is the README block: one line per figure with its meaning, then
// the assumptions.
func (r *report) markdown() string {
	var b strings.Builder
	b.WriteString("| figure | value | unit | what it means |\n|---|--:|---|---|\n")
	for _, f := range r.figures {
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", f.name, f.formatted(), f.unit, f.meaning)
	}
	if len(r.notes) > 0 {
		b.WriteString("\n")
		for _, n := range r.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}

const (
	markerStart = "<!-- bench:start -->"
	markerEnd   = "<!-- bench:end -->"
)

// replaceBlock puts block between the markers of doc, or appends a
// "Performance and cost" section with the markers when doc has none.
func replaceBlock(doc []byte, block string) ([]byte, error) {
	s := string(doc)
	i := strings.Index(s, markerStart)
	j := strings.Index(s, markerEnd)
	switch {
	case i < 0 && j < 0:
		var b bytes.Buffer
		b.WriteString(strings.TrimRight(s, "\n"))
		b.WriteString("\n\n## Performance and cost\n\n`make bench` measures on loopback and rewrites the block below.\n\n")
		b.WriteString(markerStart + "\n" + block + markerEnd + "\n")
		return b.Bytes(), nil
	case i < 0 || j < i:
		return nil, errors.New("README has a broken bench block: expected " + markerStart + " before " + markerEnd)
	}
	return []byte(s[:i+len(markerStart)] + "\n" + block + s[j:]), nil
}

func rewriteReadme(path, block string) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := replaceBlock(doc, block)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if bytes.Equal(out, doc) {
		return nil
	}
	return os.WriteFile(path, out, 0o644)
}
