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
