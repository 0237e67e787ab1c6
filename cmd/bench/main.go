// Command bench is `make bench`: it measures what the system costs and how
// fast it is, on loopback against the Tesla simulator and the file store,
// prints one line per figure (`bench <name> <value> <unit>`) and rewrites
// the block between <!-- bench:start --> and <!-- bench:end --> in the
// README with the same figures and what each means.
//
// The figures come from the real binaries (cold start, memory, the refresh
// herd against a worker process), the real services in-process (devstack:
// a tick's calls, a simulated day), a replay of the Python system's call
// pattern against the same simulator, and the simulated year of
// internal/faults (run as a test, which reports its counters to a file).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	readme := fs.String("readme", "", "rewrite the bench block of this README (empty: print only)")
	skipYear := fs.Bool("skip-year", false, "do not run the simulated year (about a minute)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	b := &bench{report: &report{out: stdout}, dir: dir, log: stderr}
	steps := []struct {
		name string
		fn   func(context.Context, *bench) error
	}{
		{"binaries", benchBinaries},
		{"refresh herd", benchHerd},
		{"scout tick", benchScoutTick},
		{"signed cycle", benchSignedCycle},
		{"simulated day", benchDay},
	}
	if !*skipYear {
		steps = append(steps, struct {
			name string
			fn   func(context.Context, *bench) error
		}{"simulated year", benchYear})
	}
	var firstErr error
	for _, s := range steps {
		if err := ctx.Err(); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "bench: %s…\n", s.name)
		if err := s.fn(ctx, b); err != nil {
			// One failed measurement does not hide the others.
			fmt.Fprintf(stderr, "bench: %s: %v\n", s.name, err)
			if firstErr == nil {
				firstErr = fmt.Errorf("%s: %w", s.name, err)
			}
		}
	}
	if *readme != "" {
		if err := rewriteReadme(*readme, b.markdown()); err != nil {
			return err
		}
	}
	return firstErr
}

// bench is the state the measurements share: the report, a scratch
// directory, and the binaries built once.
type bench struct {
	*report
	dir       string
	log       io.Writer
	workerBin string
	scoutBin  string
}
