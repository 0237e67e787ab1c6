package envcfg_test

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/offpeak-charging/offpeak/internal/envcfg"
	"github.com/offpeak-charging/offpeak/internal/pubkey"
	"github.com/offpeak-charging/offpeak/internal/scout"
	"github.com/offpeak-charging/offpeak/internal/worker"
)

// Every variable a service reads is documented in the README's tables.
func TestREADMEDocumentsEveryVariable(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for name, typ := range map[string]reflect.Type{"worker": reflect.TypeOf(worker.Config{}), "scout": reflect.TypeOf(scout.Config{}),
		"pubkey": reflect.TypeOf(pubkey.Config{})} {
		for v := range envcfg.Vars(typ) {
			if !strings.Contains(string(readme), "`"+v+"`") {
				t.Errorf("%s reads %s, which the README's configuration tables do not list", name, v)
			}
		}
	}
}

// The README's table of the token settings is the code's: every variable
// of the section, in its order, with the default its tag gives.
func TestREADMETokenTableIsTheSection(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "\n### Tesla and the tokens\n")
	if !ok {
		t.Fatal("README: no section \"Tesla and the tokens\"")
	}
	table, _, _ = strings.Cut(table, "\n### ")
	var got []envcfg.Var
	for _, line := range strings.Split(table, "\n") {
		cells := strings.Split(line, " | ")
		if len(cells) < 3 || !strings.HasPrefix(cells[0], "| `") {
			continue
		}
		got = append(got, envcfg.Var{Name: strings.Trim(cells[0], "| `"), Default: strings.Trim(cells[1], "`")})
	}
	want := envcfg.Describe(reflect.TypeOf(envcfg.TeslaApp{}))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("README's token table:\n%+v\nenvcfg.TeslaApp:\n%+v", got, want)
	}
}
