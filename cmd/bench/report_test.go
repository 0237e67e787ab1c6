package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestReplaceBlock(t *testing.T) {
	t.Parallel()
	doc := "# x\n\n## Performance and cost\n\n" + markerStart + "\n(run `make bench`)\n" + markerEnd + "\n\n## After\n"
	out, err := replaceBlock([]byte(doc), "| a | 1 |\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "# x\n\n## Performance and cost\n\n" + markerStart + "\n| a | 1 |\n" + markerEnd + "\n\n## After\n"
	if string(out) != want {
		t.Errorf("got\n%s\nwant\n%s", out, want)
	}
	again, _ := replaceBlock(out, "| a | 1 |\n")
	if !bytes.Equal(again, out) {
		t.Error("rewriting with the same figures changed the README")
	}

	appended, err := replaceBlock([]byte("# x\n"), "| b | 2 |\n")
	if err != nil || !strings.Contains(string(appended), "## Performance and cost") ||
		!strings.HasSuffix(string(appended), markerStart+"\n| b | 2 |\n"+markerEnd+"\n") {
		t.Errorf("no markers: %q %v", appended, err)
	}
	if _, err := replaceBlock([]byte(markerEnd+"\n"+markerStart+"\n"), "x"); err == nil {
		t.Error("markers in the wrong order were accepted")
	}
}

func TestMonthlyCost(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		d    dayCounts
		want float64
	}{
		{"free tiers only", dayCounts{accesses: 300, activeAtEnd: 6}, 0},
		{"data, commands, wakes", dayCounts{billedData: 50, commands: 10, wakes: 1}, 30 * (0.1 + 0.01 + 0.02)},
		{"versions beyond six", dayCounts{activeAtEnd: 370}, 0.06 * 364},
		{"accesses beyond 10,000 a month", dayCounts{accesses: 1000}, 0.03 * 2},
	}
	for _, tc := range cases {
		if got := monthlyCost(tc.d); got < tc.want-0.006 || got > tc.want+0.006 {
			t.Errorf("%s: %.2f, want %.2f", tc.name, got, tc.want)
		}
	}
}

func TestPercentileAndFormat(t *testing.T) {
	t.Parallel()
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if p := percentile(ds, 50); p != 50*time.Millisecond {
		t.Errorf("p50 = %s", p)
	}
	if p := percentile(ds, 99); p != 99*time.Millisecond {
		t.Errorf("p99 = %s", p)
	}
	var out bytes.Buffer
	r := &report{out: &out}
	r.add("x_ms", 12.25, "ms", "m")
	r.add("y", 3, "versions", "m")
	r.add("z_usd", 1.5, "USD", "m")
	if got := out.String(); got != "bench x_ms 12.2 ms\nbench y 3 versions\nbench z_usd 1.50 USD\n" &&
		got != "bench x_ms 12.3 ms\nbench y 3 versions\nbench z_usd 1.50 USD\n" {
		t.Errorf("lines:\n%s", got)
	}
}
