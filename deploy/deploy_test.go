package deploy_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"debug/elf"
	"go/parser"
	"go/token"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"
	"gopkg.in/yaml.v3"

	// The worker's TIMEZONE is checked by LoadConfig, here as in production.
	_ "time/tzdata"

	"github.com/offpeak-charging/offpeak/internal/envcfg"
	"github.com/offpeak-charging/offpeak/internal/pubkey"
	"github.com/offpeak-charging/offpeak/internal/scout"
	"github.com/offpeak-charging/offpeak/internal/worker"
)

// The settings the golden file was made with.
const (
	project = "demo-project"
	region  = "europe-central2"
)

var baseEnv = map[string]string{
	"PROJECT": project, "REGION": region, "HOME_LAT": "52.2297", "HOME_LON": "21.0122",
}

// A Cloud Run service, as much of it as the tests look at.
type service struct {
	Metadata struct {
		Name        string            `yaml:"name"`
		Annotations map[string]string `yaml:"annotations"`
	} `yaml:"metadata"`
	Spec struct {
		Template struct {
			Metadata struct {
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"metadata"`
			Spec struct {
				ServiceAccountName   string `yaml:"serviceAccountName"`
				ContainerConcurrency int    `yaml:"containerConcurrency"`
				TimeoutSeconds       int    `yaml:"timeoutSeconds"`
				Containers           []struct {
					Image string `yaml:"image"`
					Ports []struct {
						ContainerPort int `yaml:"containerPort"`
					} `yaml:"ports"`
					Env []struct {
						Name  string  `yaml:"name"`
						Value *string `yaml:"value"`
					} `yaml:"env"`
					Resources struct {
						Limits map[string]string `yaml:"limits"`
					} `yaml:"resources"`
					StartupProbe  *probe `yaml:"startupProbe"`
					LivenessProbe *probe `yaml:"livenessProbe"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port int    `yaml:"port"`
	} `yaml:"httpGet"`
	TCPSocket *struct {
		Port int `yaml:"port"`
	} `yaml:"tcpSocket"`
	PeriodSeconds    int `yaml:"periodSeconds"`
	TimeoutSeconds   int `yaml:"timeoutSeconds"`
	FailureThreshold int `yaml:"failureThreshold"`
}

func parseService(t *testing.T, name, text string) service {
	t.Helper()
	var s service
	dec := yaml.NewDecoder(strings.NewReader(text))
	dec.KnownFields(false)
	if err := dec.Decode(&s); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, text)
	}
	if len(s.Spec.Template.Spec.Containers) != 1 {
		t.Fatalf("%s: %d containers, want 1", name, len(s.Spec.Template.Spec.Containers))
	}
	return s
}

// env is the container's environment; every entry must have a value.
func (s service) env(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, e := range s.Spec.Template.Spec.Containers[0].Env {
		if e.Value == nil {
			t.Errorf("%s: %s has no value", s.Metadata.Name, e.Name)
			continue
		}
		if _, dup := out[e.Name]; dup {
			t.Errorf("%s: %s is set twice", s.Metadata.Name, e.Name)
		}
		out[e.Name] = *e.Value
	}
	return out
}

// script is what a run of deploy.sh printed, taken apart: the commands in
// order (an `a || b` line gives both), the files written by here-documents,
// and the values queried (by variable, the last query of each; and all of
// them in order).
type script struct {
	out      string
	commands [][]string
	files    map[string]string
	queries  map[string][]string
	asked    [][]string
}

func (s script) find(prefix ...string) [][]string {
	var out [][]string
	for _, c := range s.commands {
		if len(c) >= len(prefix) && slices.Equal(c[:len(prefix)], prefix) {
			out = append(out, c)
		}
	}
	return out
}

func (s script) service(t *testing.T, name string) service {
	t.Helper()
	text, ok := s.files["deploy/.rendered/"+name+".yaml"]
	if !ok {
		t.Fatalf("the dry run renders no %s.yaml", name)
	}
	return parseService(t, name, text)
}

// flag returns the value after name in cmd.
func flag(cmd []string, name string) string {
	for i, a := range cmd[:len(cmd)-1] {
		if a == name {
			return cmd[i+1]
		}
	}
	return ""
}

var (
	heredocStart = regexp.MustCompile(`^cat > (\S+) <<'YAML'$`)
	queryLine    = regexp.MustCompile(`^([A-Z_]+)=\$\((.*)\)$`)
)

func parseScript(t *testing.T, out string) script {
	t.Helper()
	s := script{out: out, files: map[string]string{}, queries: map[string][]string{}}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if m := heredocStart.FindStringSubmatch(line); m != nil {
			var b strings.Builder
			for sc.Scan() && sc.Text() != "YAML" {
				b.WriteString(sc.Text() + "\n")
			}
			s.files[m[1]] = b.String()
			continue
		}
		if m := queryLine.FindStringSubmatch(line); m != nil {
			s.queries[m[1]] = shellWords(t, m[2])
			s.asked = append(s.asked, shellWords(t, m[2]))
			continue
		}
		for _, part := range strings.Split(line, " || ") {
			s.commands = append(s.commands, shellWords(t, part))
		}
	}
	return s
}

// shellWords splits a line the way bash reads printf %q output.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == ' ':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
			inWord = true
		case c == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				t.Fatalf("unterminated quote in %q", line)
			}
			cur.WriteString(line[i+1 : i+1+end])
			i += end + 1
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}

// tripwire puts a gcloud and a gsutil on PATH that fail and leave a mark:
// a dry run must run neither.
func tripwire(t *testing.T) (dir, mark string) {
	t.Helper()
	dir = t.TempDir()
	mark = filepath.Join(dir, "called")
	for _, name := range []string{"gcloud", "gsutil"} {
		script := "#!/usr/bin/env bash\necho \"$0 $*\" >> " + strconv.Quote(mark) + "\nexit 97\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir, mark
}

// deploySh runs deploy/deploy.sh from the repository root with exactly env
// (plus PATH with binDir first, and HOME).
func deploySh(t *testing.T, binDir string, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command("bash", append([]string{"deploy/deploy.sh"}, args...)...)
	cmd.Dir = ".."
	cmd.Env = []string{"PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

func dryRun(t *testing.T, extra map[string]string) script {
	t.Helper()
	bin, mark := tripwire(t)
	env := map[string]string{"DRY_RUN": "1"}
	for k, v := range baseEnv {
		env[k] = v
	}
	for k, v := range extra {
		env[k] = v
	}
	out, stderr, err := deploySh(t, bin, env)
	if err != nil {
		t.Fatalf("deploy.sh: %v\n%s", err, stderr)
	}
	if called, err := os.ReadFile(mark); err == nil {
		t.Fatalf("a dry run ran cloud commands:\n%s", called)
	}
	return parseScript(t, out)
}

func TestDryRunMatchesGolden(t *testing.T) {
	t.Parallel()
	out := dryRun(t, nil).out
	golden := filepath.Join("testdata", "dry-run.golden")
	if os.Getenv("UPDATE_GOLDEN") == "1" {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Errorf("dry-run output differs from %s (UPDATE_GOLDEN=1 go test ./deploy rewrites it):\n%s", golden, out)
	}
	if again := dryRun(t, nil).out; again != out {
		t.Error("two dry runs printed different output")
	}
}

// configVars lists the variables a configuration struct reads, walking the
// nested sections, and whether each is required.
func configVars(t *testing.T, typ reflect.Type) map[string]bool {
	t.Helper()
	vars := envcfg.Vars(typ)
	// A walk that found nothing, or missed the nested sections, would make
	// every check below pass.
	for _, v := range []string{"PORT", "SECRETS_BACKEND", "STATE_BUCKET", "HOME_LAT"} {
		if _, ok := vars[v]; !ok {
			t.Fatalf("%s: %s not found among %v", typ, v, vars)
		}
	}
	if !vars["HOME_LAT"] {
		t.Fatalf("%s: HOME_LAT should be required", typ)
	}
	return vars
}

func TestServicesMatchTheConfiguration(t *testing.T) {
	t.Parallel()
	s := dryRun(t, nil)
	configs := map[string]reflect.Type{"worker": reflect.TypeOf(worker.Config{}), "scout": reflect.TypeOf(scout.Config{})}
	for name, typ := range configs {
		svc := s.service(t, name)
		vars := configVars(t, typ)
		env := svc.env(t)
		for v := range env {
			if _, ok := vars[v]; !ok {
				t.Errorf("%s.yaml sets %s, which %s.Config does not read", name, v, name)
			}
		}
		for v, required := range vars {
			if required && env[v] == "" {
				t.Errorf("%s.yaml does not set the required %s", name, v)
			}
		}
		if _, ok := env["PORT"]; ok {
			t.Errorf("%s.yaml sets PORT: Cloud Run sets it", name)
		}
		want := map[string]string{"SECRETS_BACKEND": "gcp", "GOOGLE_CLOUD_PROJECT": project, "STATE_BACKEND": "gcs",
			"STATE_BUCKET": project + "-offpeak-state", "LOG_FORMAT": "json", "WORKER_AUTH": "iam"}
		for k, v := range want {
			if env[k] != v {
				t.Errorf("%s: %s=%q, want %q", name, k, env[k], v)
			}
		}
	}
	if got := s.service(t, "scout").env(t)["SCOUT_AUTH"]; got != "iam" {
		t.Errorf("scout: SCOUT_AUTH=%q, want iam", got)
	}
}

// The rendered environments are loaded by the services' own LoadConfig:
// whatever the validation demands (an allow-list with iam, a bucket with
// gcs, a project with gcp, a URL for the worker) is there.
func TestServicesStartWithTheirEnvironment(t *testing.T) {
	t.Parallel()
	for name, extra := range map[string]map[string]string{
		"defaults": nil,
		"every option": {"OPERATOR": "me@example.com", "PLANNER_URL": "https://planner.example.com/api?a=1&b=2",
			"VEHICLE_VINS": "5YJ3E7EB0KF000001", "TARIFF_WINDOWS": "23:00-07:00", "CHARGE_TARGET_PERCENT": "90",
			"HOME_RADIUS_M": "150", "TESLA_COMMAND_URL": "https://proxy.example.com:4443"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := dryRun(t, extra)
			ctx := context.Background()
			wenv := s.service(t, "worker").env(t)
			wc, err := worker.LoadConfig(ctx, envconfig.MapLookuper(wenv))
			if err != nil {
				t.Fatalf("the worker would not start: %v", err)
			}
			senv := s.service(t, "scout").env(t)
			sc, err := scout.LoadConfig(ctx, envconfig.MapLookuper(senv))
			if err != nil {
				t.Fatalf("the scout would not start: %v", err)
			}
			if wc.Charging.Home != sc.Home {
				t.Errorf("worker and scout disagree about home: %+v, %+v", wc.Charging.Home, sc.Home)
			}
			for k, v := range extra {
				if k == "OPERATOR" {
					continue
				}
				if wenv[k] != v && senv[k] != v {
					t.Errorf("%s=%q reaches neither service", k, v)
				}
			}
			if extra == nil {
				for _, optional := range []string{"PLANNER_URL", "VEHICLE_VINS", "TARIFF_WINDOWS", "HOME_RADIUS_M",
					"TESLA_COMMAND_MODE", "TESLA_COMMAND_URL"} {
					if _, ok := wenv[optional]; ok {
						t.Errorf("worker: unset %s should be left out, not set empty", optional)
					}
					if _, ok := senv[optional]; ok {
						t.Errorf("scout: unset %s should be left out, not set empty", optional)
					}
				}
			}
		})
	}
}

// How commands reach the cars. By default the worker signs them itself:
// no TESLA_COMMAND_URL (the old default, the Fleet API's URL, would send
// unsigned commands that only pre-2021 Model S/X accept) and the Python
// system's key secret. What deploy.sh refuses, the worker would refuse at
// start-up, and the other way round.
func TestCommandSettings(t *testing.T) {
	t.Parallel()
	defaults := dryRun(t, nil)
	wenv := defaults.service(t, "worker").env(t)
	if got := wenv["TESLA_PRIVATE_KEY_SECRET"]; got != "tesla-private-key" {
		t.Errorf("worker TESLA_PRIVATE_KEY_SECRET=%q, want tesla-private-key (the Python system's)", got)
	}
	for _, v := range []string{"TESLA_COMMAND_URL", "TESLA_COMMAND_MODE"} {
		if got, ok := wenv[v]; ok {
			t.Errorf("worker: %s=%q by default; want it left out", v, got)
		}
	}
	for v := range defaults.service(t, "scout").env(t) {
		if strings.HasPrefix(v, "TESLA_COMMAND") || strings.HasPrefix(v, "TESLA_PRIVATE_KEY") {
			t.Errorf("scout sets %s: it sends no commands", v)
		}
	}
	fleetURL := wenv["TESLA_FLEET_API_URL"]
	const signer = "https://signer.example.com:4443"
	for _, tc := range []struct {
		mode, url string
		want      string // the worker's resolved mode; "" = refused
		wantURL   string // TESLA_COMMAND_URL as deployed
		named     string // what the refusal names
	}{
		{"", "", "sign", "", ""},
		{"auto", "", "sign", "", ""},
		{"sign", "", "sign", "", ""},
		{"rest", "", "rest", "", ""},
		{"", signer, "proxy", signer, ""},
		{"auto", signer, "proxy", signer, ""},
		{"proxy", signer, "proxy", signer, ""},
		// The Python system's "no signer": dropped, as the worker would.
		{"", fleetURL, "sign", "", ""},
		{"sign", fleetURL + "/", "sign", "", ""},
		{"proxy", "", "", "", "TESLA_COMMAND_URL"},
		{"proxy", fleetURL, "", "", "TESLA_COMMAND_URL"},
		{"sign", signer, "", "", "TESLA_COMMAND_URL"},
		{"rest", signer, "", "", "TESLA_COMMAND_URL"},
		{"signed", "", "", "", "TESLA_COMMAND_MODE"},
	} {
		t.Run(tc.mode+"|"+tc.url, func(t *testing.T) {
			t.Parallel()
			extra := map[string]string{"TESLA_COMMAND_MODE": tc.mode, "TESLA_COMMAND_URL": tc.url}
			// The worker's own verdict on the same settings.
			direct := maps.Clone(wenv)
			for k, v := range extra {
				if v != "" {
					direct[k] = v
				}
			}
			_, loadErr := worker.LoadConfig(context.Background(), envconfig.MapLookuper(direct))

			bin, _ := tripwire(t)
			env := map[string]string{"DRY_RUN": "1"}
			for _, m := range []map[string]string{baseEnv, extra} {
				for k, v := range m {
					env[k] = v
				}
			}
			out, stderr, err := deploySh(t, bin, env)
			if tc.want == "" {
				if err == nil || out != "" {
					t.Fatalf("deploy.sh accepted it (err %v)", err)
				}
				if !strings.Contains(stderr, tc.named) {
					t.Errorf("the refusal does not name %s: %s", tc.named, stderr)
				}
				if loadErr == nil {
					t.Error("deploy.sh refuses what the worker would accept")
				}
				return
			}
			if err != nil {
				t.Fatalf("deploy.sh: %v\n%s", err, stderr)
			}
			if loadErr != nil {
				t.Errorf("deploy.sh accepts what the worker refuses: %v", loadErr)
			}
			got := parseScript(t, out).service(t, "worker").env(t)
			if url, ok := got["TESLA_COMMAND_URL"]; url != tc.wantURL || ok != (tc.wantURL != "") {
				t.Errorf("TESLA_COMMAND_URL deployed as %q (set: %v), want %q", url, ok, tc.wantURL)
			}
			if m, ok := got["TESLA_COMMAND_MODE"]; m != tc.mode || ok != (tc.mode != "") {
				t.Errorf("TESLA_COMMAND_MODE deployed as %q (set: %v), want %q", m, ok, tc.mode)
			}
			wc, err := worker.LoadConfig(context.Background(), envconfig.MapLookuper(got))
			if err != nil {
				t.Fatalf("the worker would not start: %v", err)
			}
			if mode, err := wc.CommandMode(); err != nil || string(mode) != tc.want {
				t.Errorf("the worker would send commands by %q (%v), want %q", mode, err, tc.want)
			}
		})
	}
}

func TestServiceShape(t *testing.T) {
	t.Parallel()
	s := dryRun(t, nil)
	job := s.find("gcloud", "scheduler", "jobs", "create", "http")
	if len(job) != 1 {
		t.Fatalf("%d scheduler job creations, want 1", len(job))
	}
	deadline := parseSeconds(t, flag(job[0], "--attempt-deadline"))
	for _, name := range []string{"worker", "scout"} {
		svc := s.service(t, name)
		spec := svc.Spec.Template.Spec
		c := spec.Containers[0]
		if got := svc.Metadata.Annotations["run.googleapis.com/ingress"]; got != "all" {
			t.Errorf("%s: ingress %q; the callers are not in a VPC, IAM is the gate", name, got)
		}
		if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 8080 {
			t.Errorf("%s: container ports %+v, want one, 8080", name, c.Ports)
		}
		for kind, p := range map[string]*probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe} {
			if p == nil || p.HTTPGet == nil || p.HTTPGet.Path != "/health" || p.HTTPGet.Port != 8080 {
				t.Errorf("%s: %s probe %+v, want GET /health on 8080", name, kind, p)
				continue
			}
			if p.TimeoutSeconds > p.PeriodSeconds {
				t.Errorf("%s: %s probe timeout %d s above its period %d s", name, kind, p.TimeoutSeconds, p.PeriodSeconds)
			}
		}
		if !regexp.MustCompile(`^` + region + `-docker\.pkg\.dev/` + project + `/offpeak/` + name + `@sha256:\S+$`).MatchString(c.Image) {
			t.Errorf("%s: image %q is not this project's %s image pinned by digest", name, c.Image, name)
		}
		ann := svc.Spec.Template.Metadata.Annotations
		if ann["run.googleapis.com/cpu-throttling"] != "true" || ann["autoscaling.knative.dev/minScale"] != "0" {
			t.Errorf("%s: %v; want CPU only during requests and scale to zero", name, ann)
		}
		if mem := c.Resources.Limits["memory"]; (mem != "128Mi" && mem != "256Mi") || ann["run.googleapis.com/execution-environment"] != "gen1" {
			t.Errorf("%s: memory %q on %q; below 512Mi needs the first generation", name, mem, ann["run.googleapis.com/execution-environment"])
		}
		if spec.TimeoutSeconds < 300 || spec.TimeoutSeconds >= deadline {
			t.Errorf("%s: request timeout %d s; want ≥ 300 s and below the Scheduler's %d s", name, spec.TimeoutSeconds, deadline)
		}
	}
	w := s.service(t, "worker").Spec.Template
	if w.Metadata.Annotations["autoscaling.knative.dev/maxScale"] != "1" || w.Spec.ContainerConcurrency <= 1 {
		t.Errorf("worker: maxScale %q, concurrency %d; want 1 and above 1",
			w.Metadata.Annotations["autoscaling.knative.dev/maxScale"], w.Spec.ContainerConcurrency)
	}
	sc := s.service(t, "scout")
	tick := parseSeconds(t, sc.env(t)["TICK_TIMEOUT"])
	if timeout := sc.Spec.Template.Spec.TimeoutSeconds; tick >= timeout {
		t.Errorf("scout: TICK_TIMEOUT %d s is not inside its request timeout %d s", tick, timeout)
	}
	for f, want := range map[string]string{"--schedule": "*/15 * * * *", "--http-method": "POST",
		"--uri": "https://offpeak-scout-DRY-RUN.a.run.app/tick", "--oidc-token-audience": "https://offpeak-scout-DRY-RUN.a.run.app"} {
		if got := flag(job[0], f); got != want {
			t.Errorf("scheduler job %s %q, want %q", f, got, want)
		}
	}
	if n, _ := strconv.Atoi(flag(job[0], "--max-retry-attempts")); n < 1 || flag(job[0], "--min-backoff") == "" {
		t.Errorf("scheduler job retries without backoff: %q", job[0])
	}
	// An attempt that times out and its first retry end before the next tick.
	if backoff := parseSeconds(t, flag(job[0], "--min-backoff")); 2*deadline+backoff >= 15*60 {
		t.Errorf("a timed-out attempt and its retry take %d s, past the next tick", 2*deadline+backoff)
	}
	// With a retry count, Scheduler retries until both limits are reached:
	// a duration would only add attempts.
	if slices.Contains(job[0], "--max-retry-duration") {
		t.Error("--max-retry-duration with --max-retry-attempts retries until both are reached")
	}
	update := s.find("gcloud", "scheduler", "jobs", "update", "http")
	if len(update) != 1 || !slices.Equal(update[0][5:], job[0][5:]) {
		t.Errorf("the job is not updated with the flags it is created with:\n%q\n%q", job, update)
	}
}

func parseSeconds(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSuffix(s, "s"))
	if err != nil || !strings.HasSuffix(s, "s") {
		t.Fatalf("%q is not a number of seconds", s)
	}
	return n
}

// binding is one add-iam-policy-binding: on what, to whom, which role,
// and under which IAM condition ("" for none).
type binding struct{ on, member, role, cond string }

func bindings(t *testing.T, s script) []binding {
	t.Helper()
	var out []binding
	for _, c := range s.commands {
		i := slices.Index(c, "add-iam-policy-binding")
		if i < 0 {
			continue
		}
		kind := strings.Join(c[1:i], " ")
		switch kind {
		case "secrets", "storage buckets", "artifacts repositories", "run services":
		default:
			t.Errorf("a binding on %q (only one secret, bucket, repository or service at a time): %q", kind, c)
		}
		out = append(out, binding{kind + " " + c[i+1], flag(c, "--member"), flag(c, "--role"), flag(c, "--condition")})
	}
	return out
}

func TestIAMIsLeastPrivilege(t *testing.T) {
	t.Parallel()
	sa := func(id string) string { return "serviceAccount:" + id + "@" + project + ".iam.gserviceaccount.com" }
	scoutSA, workerSA, schedulerSA, builderSA := sa("offpeak-scout"), sa("offpeak-worker"), sa("offpeak-scheduler"), sa("offpeak-builder")
	pubkeySA := sa("offpeak-pubkey")
	accessor := "roles/secretmanager.secretAccessor"
	base := []binding{
		{"secrets fleet-tokens", scoutSA, accessor, ""},
		// Only its own objects (TestStateBucketIsSplitByPrefix).
		{"storage buckets gs://demo-project-offpeak-state", scoutSA, "roles/storage.objectUser",
			stateCondition("offpeak-scout-state", "vehicles/", "scout/")},
		// And reads the worker's charge needs, never writes them.
		{"storage buckets gs://demo-project-offpeak-state", scoutSA, "roles/storage.objectViewer",
			stateCondition("offpeak-scout-read", "needs/")},
		{"run services offpeak-worker", scoutSA, "roles/run.invoker", ""},
		{"secrets fleet-tokens", workerSA, accessor, ""},
		{"secrets fleet-tokens", workerSA, "roles/secretmanager.secretVersionManager", ""},
		{"secrets fleet-tokens", workerSA, "projects/demo-project/roles/offpeakTokenLease", ""},
		{"secrets tesla-client-id", workerSA, accessor, ""},
		{"secrets tesla-client-secret", workerSA, accessor, ""},
		{"secrets tesla-refresh-token", workerSA, accessor, ""},
		{"secrets tesla-private-key", workerSA, accessor, ""},
		{"storage buckets gs://demo-project-offpeak-state", workerSA, "roles/storage.objectUser",
			stateCondition("offpeak-worker-state", "plans/", "leases/cycle-", "sessions/", "command-paths/", "needs/")},
		{"run services offpeak-scout", schedulerSA, "roles/run.invoker", ""},
		// Google's documented role for a user-created logs bucket, on that
		// bucket alone (iam.sh).
		{"storage buckets gs://demo-project-offpeak-build", builderSA, "roles/storage.admin", ""},
		{"artifacts repositories offpeak", builderSA, "roles/artifactregistry.writer", ""},
		{"secrets tesla-private-key", pubkeySA, accessor, ""},
		{"run services offpeak-pubkey", "allUsers", "roles/run.invoker", ""},
	}
	for name, tc := range map[string]struct {
		env  map[string]string
		want []binding
	}{
		"defaults": {nil, base},
		"planner and operator": {map[string]string{"PLANNER_URL": "https://planner.example.com", "OPERATOR": "me@example.com"},
			append(slices.Clone(base),
				binding{"secrets planner-api-key", workerSA, accessor, ""},
				binding{"run services offpeak-worker", "user:me@example.com", "roles/run.invoker", ""},
				binding{"run services offpeak-scout", "user:me@example.com", "roles/run.invoker", ""})},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := dryRun(t, tc.env)
			got := bindings(t, s)
			key := func(b binding) string { return b.on + "|" + b.member + "|" + b.role + "|" + b.cond }
			sortBy := func(bs []binding) []string {
				out := make([]string, len(bs))
				for i, b := range bs {
					out[i] = key(b)
				}
				sort.Strings(out)
				return out
			}
			if g, w := sortBy(got), sortBy(tc.want); !slices.Equal(g, w) {
				t.Errorf("bindings:\n got %s\nwant %s", strings.Join(g, "\n     "), strings.Join(w, "\n     "))
			}
			if tc.env["PLANNER_URL"] != "" && len(s.find("gcloud", "secrets", "create", "planner-api-key")) != 1 {
				t.Error("PLANNER_URL set, but the planner-api-key secret is not created")
			}
			// The command key: created if missing, read by the worker (to sign)
			// and the public-key service (to serve its public half) and by
			// nobody else, and never written by them (the operator adds versions).
			if len(s.find("gcloud", "secrets", "create", "tesla-private-key")) != 1 {
				t.Error("the tesla-private-key secret is not created")
			}
			for _, b := range got {
				if b.on == "secrets tesla-private-key" && (b.member != workerSA && b.member != pubkeySA || b.role != accessor) {
					t.Errorf("tesla-private-key: %s gets %s; only the worker and the public-key service may read it, and only read", b.member, b.role)
				}
				if b.member == scoutSA && b.on != "secrets fleet-tokens" && strings.HasPrefix(b.on, "secrets ") {
					t.Errorf("the scout gets %s on %s; it reads fleet-tokens only", b.role, b.on)
				}
				if b.member == pubkeySA && b.on != "secrets tesla-private-key" {
					t.Errorf("the public-key service gets %s on %s; it reads tesla-private-key only", b.role, b.on)
				}
			}
		})
	}
	// Nowhere in deploy/, not even in a branch the dry run does not take.
	for _, f := range deployFiles(t) {
		data, _ := os.ReadFile(f)
		if regexp.MustCompile(`projects\s+add-iam-policy-binding|organizations\s+add-iam-policy-binding`).Match(data) {
			t.Errorf("%s grants a project- or organization-wide role", f)
		}
	}
}

func TestServiceAccountsAgree(t *testing.T) {
	t.Parallel()
	s := dryRun(t, nil)
	created := map[string]bool{}
	for _, c := range s.find("gcloud", "iam", "service-accounts", "create") {
		created[c[4]+"@"+project+".iam.gserviceaccount.com"] = true
	}
	w, sc, pk := s.service(t, "worker"), s.service(t, "scout"), s.service(t, "pubkey")
	workerSA, scoutSA := w.Spec.Template.Spec.ServiceAccountName, sc.Spec.Template.Spec.ServiceAccountName
	pubkeySA := pk.Spec.Template.Spec.ServiceAccountName
	job := s.find("gcloud", "scheduler", "jobs", "create", "http")[0]
	schedulerSA := flag(job, "--oidc-service-account-email")
	build := s.find("gcloud", "builds", "submit")
	if len(build) != 1 {
		t.Fatalf("%d builds, want 1", len(build))
	}
	builderSA := strings.TrimPrefix(flag(build[0], "--service-account"), "projects/"+project+"/serviceAccounts/")
	accounts := map[string]string{"worker": workerSA, "scout": scoutSA, "pubkey": pubkeySA, "scheduler": schedulerSA, "builder": builderSA}
	seen := map[string]string{}
	for role, email := range accounts {
		if !created[email] {
			t.Errorf("the %s runs as %q, which the IAM step does not create (it creates %v)", role, email, created)
		}
		if other, dup := seen[email]; dup {
			t.Errorf("the %s and the %s share the account %s", role, other, email)
		}
		seen[email] = role
	}
	if len(created) != len(accounts) {
		t.Errorf("the IAM step creates %d accounts, %d are used", len(created), len(accounts))
	}
	if got := w.env(t)["ALLOWED_INVOKERS"]; got != scoutSA {
		t.Errorf("worker ALLOWED_INVOKERS=%q, want the scout's account %s", got, scoutSA)
	}
	if got := sc.env(t)["SCOUT_ALLOWED_INVOKERS"]; got != schedulerSA {
		t.Errorf("scout SCOUT_ALLOWED_INVOKERS=%q, want the job's account %s", got, schedulerSA)
	}
	invokers := map[string]string{}
	for _, b := range bindings(t, s) {
		if b.role == "roles/run.invoker" {
			invokers[strings.TrimPrefix(b.on, "run services ")] = strings.TrimPrefix(b.member, "serviceAccount:")
		}
	}
	if invokers[w.Metadata.Name] != scoutSA || invokers[sc.Metadata.Name] != schedulerSA {
		t.Errorf("run.invoker: %v; want the scout's account on the worker, the job's on the scout", invokers)
	}
}

// Every create is guarded by a describe, so the scripts can run again.
func TestIAMIsIdempotent(t *testing.T) {
	t.Parallel()
	for _, f := range []string{"deploy.sh", "iam.sh"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			if strings.Contains(line, " create ") && strings.Contains(line, "gcloud") && !strings.Contains(line, "--then gcloud") {
				t.Errorf("%s:%d creates without checking first: %s", f, i+1, strings.TrimSpace(line))
			}
			if strings.Contains(line, "versions add") && !strings.HasPrefix(strings.TrimSpace(line), "echo ") {
				t.Errorf("%s:%d writes a secret value: %s", f, i+1, strings.TrimSpace(line))
			}
		}
	}
	s := dryRun(t, nil)
	lines := strings.Split(s.out, "\n")
	for _, l := range lines {
		if strings.Contains(l, " create ") && !strings.Contains(l, " describe ") {
			t.Errorf("a create without a describe first: %s", l)
		}
	}
}

// fakeGcloud records its calls and answers like gcloud: describe fails for
// what does not exist (unless FAKE_EXISTS=1), digests and URLs are made up,
// and with FAKE_FLAKY set the first binding fails once. A service's IAM
// policy holds one service account, plus allUsers for the service named by
// FAKE_OPEN (and allAuthenticatedUsers for FAKE_OPEN_AUTH); the service
// named by FAKE_CHECK_OFF has the invoker check turned off. Services list
// their URL when they exist. The state bucket has uniform bucket-level
// access unless FAKE_NO_UBLA=1; its policy holds the two conditional
// bindings, plus with FAKE_LEGACY_STATE=1 the unconditional ones earlier
// deploys made.
const fakeGcloud = `#!/usr/bin/env bash
{ printf 'gcloud'; printf ' %q' "$@"; echo; } >> "$FAKE_LOG"
case "$*" in
  "storage buckets describe "*"uniform_bucket_level_access"*)
    if [[ "${FAKE_NO_UBLA:-}" == 1 ]]; then echo False; else echo True; fi ;;
  "storage buckets get-iam-policy "*)
    for sa in offpeak-scout offpeak-worker; do
      printf 'roles/storage.objectUser\tserviceAccount:%s@demo-project.iam.gserviceaccount.com\t%s-state\n' "$sa" "$sa"
      [[ "${FAKE_LEGACY_STATE:-}" == 1 ]] && printf 'roles/storage.objectUser\tserviceAccount:%s@demo-project.iam.gserviceaccount.com\n' "$sa"
    done
    [[ "${FAKE_LEGACY_STATE:-}" == 1 ]] && printf 'roles/storage.objectViewer\tuser:someone@example.com\n'
    true ;;
  "artifacts docker images describe "*) echo "sha256:$(printf '%064d' 7)" ;;
  "projects describe "*) echo 123456789012 ;;
  "run services list "*)
    if [[ "${FAKE_EXISTS:-}" == 1 ]]; then
      for a in "$@"; do [[ "$a" == metadata.name=* ]] && echo "https://${a#metadata.name=}-fake-lm.a.run.app"; done
    fi
    true ;;
  "run services describe "*"yaml(metadata.annotations)"*)
    printf 'metadata:\n  annotations:\n    run.googleapis.com/ingress: all\n'
    [[ "$4" == "${FAKE_CHECK_OFF:-}" ]] && printf "    run.googleapis.com/invoker-iam-disabled: 'true'\n"
    true ;;
  "run services describe "*"--format"*) echo "https://$4-fake-lm.a.run.app" ;;
  "run services get-iam-policy "*)
    printf 'roles/run.invoker\tserviceAccount:someone@demo-project.iam.gserviceaccount.com\n'
    [[ "$4" == "${FAKE_OPEN:-}" ]] && printf 'roles/run.invoker\tallUsers\n'
    [[ "$4" == "${FAKE_OPEN_AUTH:-}" ]] && printf 'roles/run.developer\tallAuthenticatedUsers\n'
    true ;;
  *" describe "*) [[ "${FAKE_EXISTS:-}" == 1 ]] ;;
  *add-iam-policy-binding*)
    if [[ -n "${FAKE_FLAKY:-}" && ! -e "$FAKE_FLAKY" ]]; then
      touch "$FAKE_FLAKY"; echo "ERROR: service account does not exist" >&2; exit 1
    fi ;;
esac
`

func TestDeployAgainstFakeGcloud(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "gcloud"), []byte(fakeGcloud), 0o755); err != nil {
		t.Fatal(err)
	}
	rendered := t.TempDir()
	run := func(exists bool, extra map[string]string) (script, string, error) {
		t.Helper()
		log := filepath.Join(t.TempDir(), "calls")
		env := map[string]string{"FAKE_LOG": log, "RENDER_DIR": rendered, "VERSION": "v-test", "BIND_RETRY_SLEEP": "0",
			"FAKE_FLAKY": filepath.Join(t.TempDir(), "flaked")}
		if exists {
			env["FAKE_EXISTS"] = "1"
		}
		for _, m := range []map[string]string{baseEnv, extra} {
			for k, v := range m {
				env[k] = v
			}
		}
		_, stderr, err := deploySh(t, bin, env)
		calls, rerr := os.ReadFile(log)
		if rerr != nil {
			t.Fatal(rerr)
		}
		return parseScript(t, string(calls)), stderr, err
	}
	deploy := func(exists bool) script {
		t.Helper()
		s, stderr, err := run(exists, nil)
		if err != nil {
			t.Fatalf("deploy.sh: %v\n%s", err, stderr)
		}
		return s
	}

	first, stderr, err := run(false, nil)
	if err != nil {
		t.Fatalf("deploy.sh: %v\n%s", err, stderr)
	}
	// An empty project has no command key: the worker deploys, and the
	// operator is told it cannot sign until one is added.
	if !strings.Contains(stderr, "tesla-private-key has no enabled version") {
		t.Errorf("no note about the missing command key:\n%s", stderr)
	}
	created := map[string]int{}
	for _, c := range first.commands {
		if i := slices.Index(c, "create"); i > 0 {
			created[strings.Join(c[1:i], " ")]++
		}
	}
	want := map[string]int{"iam service-accounts": 5, "secrets": 6, "iam roles": 1, "storage buckets": 2,
		"artifacts repositories": 1, "scheduler jobs": 1}
	if !reflect.DeepEqual(created, want) {
		t.Errorf("an empty project: created %v, want %v", created, want)
	}
	digest := "sha256:" + strings.Repeat("0", 63) + "7"
	if n := len(first.find("gcloud", "builds", "submit")); n != 1 {
		t.Errorf("%d builds, want 1", n)
	}
	// The first binding failed once and was tried again.
	first2 := bindings(t, first)
	if len(first2) != 18 || first2[0] != first2[1] {
		t.Errorf("bindings: %d (want 17 and one retry), first two %v", len(first2), first2[:2])
	}
	for _, name := range []string{"worker", "scout", "pubkey"} {
		data, err := os.ReadFile(filepath.Join(rendered, name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		svc := parseService(t, name, string(data))
		if img := svc.Spec.Template.Spec.Containers[0].Image; !strings.HasSuffix(img, "/"+name+"@"+digest) {
			t.Errorf("%s deployed as %q, not by the digest gcloud reported", name, img)
		}
		// A new private service learns the URL its callers use only once
		// deployed: a second revision lists it in SERVICE_URL.
		want := 1
		if name != "pubkey" {
			want = 2
			urls := svc.env(t)["SERVICE_URL"]
			if urls != "https://offpeak-"+name+"-123456789012."+region+".run.app,https://offpeak-"+name+"-fake-lm.a.run.app" {
				t.Errorf("%s SERVICE_URL=%q; want its deterministic URL and the one Cloud Run reported", name, urls)
			}
		}
		if n := len(first.find("gcloud", "run", "services", "replace", filepath.Join(rendered, name+".yaml"))); n != want {
			t.Errorf("%s replaced %d times in a new project, want %d", name, n, want)
		}
	}
	scoutYAML, _ := os.ReadFile(filepath.Join(rendered, "scout.yaml"))
	if env := parseService(t, "scout", string(scoutYAML)).env(t); env["WORKER_URL"] != "https://offpeak-worker-fake-lm.a.run.app" {
		t.Errorf("scout WORKER_URL=%q, not the URL of the deployed worker", env["WORKER_URL"])
	}
	if job := first.find("gcloud", "scheduler", "jobs", "update", "http"); len(job) != 1 || flag(job[0], "--uri") != "https://offpeak-scout-fake-lm.a.run.app/tick" {
		t.Errorf("scheduler job not pointed at the deployed scout: %q", job)
	}

	again := deploy(true)
	for _, c := range again.commands {
		if slices.Contains(c, "create") {
			t.Errorf("a second deploy creates again: %q", c)
		}
	}
	if n := len(again.find("gcloud", "scheduler", "jobs", "update", "http")); n != 1 {
		t.Errorf("a second deploy updates the job %d times, want 1", n)
	}
	for _, name := range []string{"worker", "scout", "pubkey"} {
		if n := len(again.find("gcloud", "run", "services", "replace", filepath.Join(rendered, name+".yaml"))); n != 1 {
			t.Errorf("a second deploy replaces %s %d times, want 1", name, n)
		}
	}

	// With PLANNER_URL but no key stored (the fake lists no versions), the
	// worker could never start: the script stops before building.
	noKey, stderr, err := run(true, map[string]string{"PLANNER_URL": "https://planner.example.com"})
	if err == nil || !strings.Contains(stderr, "planner-api-key has no enabled version") {
		t.Errorf("PLANNER_URL without a key: err %v, stderr %s", err, stderr)
	}
	if n := len(noKey.find("gcloud", "builds", "submit")); n != 0 {
		t.Error("built and deployed a worker that cannot start")
	}
}

func TestDeployNamesMissingSettings(t *testing.T) {
	t.Parallel()
	bin, _ := tripwire(t)
	for _, tc := range []struct {
		env           map[string]string
		named, absent []string
	}{
		{map[string]string{}, []string{"PROJECT", "REGION", "HOME_LAT", "HOME_LON"}, nil},
		{map[string]string{"PROJECT": "p", "HOME_LAT": "52", "HOME_LON": "21"}, []string{"REGION"}, []string{"PROJECT", "HOME_LAT"}},
		{map[string]string{"PROJECT": "p", "REGION": "r", "HOME_LAT": "north", "HOME_LON": "21"}, []string{"HOME_LAT=north"}, nil},
	} {
		tc.env["DRY_RUN"] = "1"
		out, stderr, err := deploySh(t, bin, tc.env)
		if err == nil || out != "" {
			t.Errorf("%v: ran (err %v) and printed %q", tc.env, err, out)
		}
		msg := strings.SplitN(stderr, "\n", 2)[0]
		for _, v := range tc.named {
			if !strings.Contains(msg, v) {
				t.Errorf("%v: %q does not name %s", tc.env, msg, v)
			}
		}
		for _, v := range tc.absent {
			if strings.Contains(msg, v) {
				t.Errorf("%v: %q names %s, which is set", tc.env, msg, v)
			}
		}
	}
}

func TestRenderRefusesUnsetPlaceholders(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "t.yaml")
	if err := os.WriteFile(tmpl, []byte("a: ${SET_ONE}\nb: ${NOT_SET}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-c", `set -euo pipefail; source deploy/lib.sh; render "$1" "$2"`, "bash", tmpl, filepath.Join(dir, "out"))
	cmd.Dir = ".."
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SET_ONE=x"}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "NOT_SET") {
		t.Errorf("render with an unset placeholder: %v %s", err, out)
	}
}

func deployFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(".", func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p == ".rendered" {
			return filepath.SkipDir
		}
		if !d.IsDir() && !strings.HasSuffix(p, "_test.go") {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return append(files, "../Dockerfile.worker", "../Dockerfile.scout", "../Dockerfile.pubkey", "../.dockerignore")
}

func TestNoMovingTags(t *testing.T) {
	t.Parallel()
	for _, f := range deployFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), ":latest") {
			t.Errorf("%s mentions :latest", f)
		}
	}
	for _, name := range []string{"worker", "scout", "pubkey"} {
		data, _ := os.ReadFile(name + ".yaml")
		if !strings.Contains(string(data), "image: ${"+strings.ToUpper(name)+"_IMAGE}") {
			t.Errorf("%s.yaml: the image must be the digest deploy.sh resolves", name)
		}
	}
}

func TestDockerfiles(t *testing.T) {
	t.Parallel()
	for _, svc := range []string{"worker", "scout", "pubkey"} {
		data, err := os.ReadFile("../Dockerfile." + svc)
		if err != nil {
			t.Fatal(err)
		}
		df := string(data)
		stages := regexp.MustCompile(`(?m)^FROM `).FindAllStringIndex(df, -1)
		if len(stages) < 2 {
			t.Fatalf("Dockerfile.%s is not multi-stage", svc)
		}
		build, final := df[:stages[len(stages)-1][0]], df[stages[len(stages)-1][0]:]
		for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "-X main.version=${VERSION}", "./cmd/" + svc, "go mod download"} {
			if !strings.Contains(build, want) {
				t.Errorf("Dockerfile.%s build stage lacks %q", svc, want)
			}
		}
		if !regexp.MustCompile(`(?m)^FROM gcr\.io/distroless/static[-\w]*:nonroot$`).MatchString(final) {
			t.Errorf("Dockerfile.%s: the final stage is not distroless static, nonroot", svc)
		}
		for _, want := range []string{"USER nonroot:nonroot", `ENTRYPOINT ["/` + svc + `"]`, "COPY --from=build /out/" + svc + " /" + svc} {
			if !strings.Contains(final, want) {
				t.Errorf("Dockerfile.%s final stage lacks %q", svc, want)
			}
		}
		// Only these instructions: nothing runs in the final stage, and
		// there is no shell to run it with.
		for _, line := range strings.Split(final, "\n") {
			instr, _, _ := strings.Cut(strings.TrimSpace(line), " ")
			switch instr {
			case "", "FROM", "COPY", "USER", "EXPOSE", "ENTRYPOINT", "LABEL":
			default:
				if !strings.HasPrefix(instr, "#") {
					t.Errorf("Dockerfile.%s final stage: %q", svc, line)
				}
			}
		}
		// The patched toolchain, pinned to its patch version: go1.26.8 has
		// reachable standard-library vulnerabilities fixed by 1.26.10.
		if !regexp.MustCompile(`(?m)^FROM golang:1\.26\.10 AS build$`).MatchString(build) {
			t.Errorf("Dockerfile.%s: build stage not golang:1.26.10 (the patched toolchain)", svc)
		}
	}
}

func TestMainsEmbedTimeZones(t *testing.T) {
	t.Parallel()
	for _, svc := range []string{"worker", "scout"} {
		f, err := parser.ParseFile(token.NewFileSet(), "../cmd/"+svc+"/tzdata.go", nil, parser.ImportsOnly|parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		ok := f.Name.Name == "main"
		found := false
		for _, imp := range f.Imports {
			if imp.Path.Value == `"time/tzdata"` && imp.Name != nil && imp.Name.Name == "_" {
				found = true
			}
		}
		if !ok || !found || f.Doc == nil && len(f.Comments) == 0 {
			t.Errorf("cmd/%s/tzdata.go: want package main, import _ \"time/tzdata\" and a comment why", svc)
		}
	}
}

// dockerBuildArgs reads the go build command from the Dockerfile's RUN line,
// so the test builds exactly what the image holds.
func dockerBuildArgs(t *testing.T, svc string) (env, args []string) {
	t.Helper()
	data, err := os.ReadFile("../Dockerfile." + svc)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "\\\n", " ")
	m := regexp.MustCompile(`(?m)^RUN (.*go build .*)$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("Dockerfile.%s: no RUN … go build", svc)
	}
	words := regexp.MustCompile(`"[^"]*"|\S+`).FindAllString(m[1], -1)
	for i, w := range words {
		w = strings.ReplaceAll(strings.Trim(w, `"`), "${VERSION}", "test")
		if w == "go" {
			args = words[i+1:]
			for j := range args {
				args[j] = strings.ReplaceAll(strings.Trim(args[j], `"`), "${VERSION}", "test")
			}
			break
		}
		env = append(env, w)
	}
	return env, args
}

func TestImagesAreSmallStaticAndCarryTimeZones(t *testing.T) {
	if testing.Short() {
		t.Skip("builds both binaries")
	}
	t.Parallel()
	// distroless/static-debian12 is about 2 MB (under 1 MB compressed).
	const base = 2 << 20
	for _, svc := range []string{"worker", "scout", "pubkey"} {
		env, args := dockerBuildArgs(t, svc)
		out := filepath.Join(t.TempDir(), svc)
		for i, a := range args {
			if a == "/out/"+svc {
				args[i] = out
			}
		}
		cmd := exec.Command("go", args...)
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), env...)
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", cmd.Args, err, msg)
		}
		bin, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var gz countingWriter
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed) // fast under -race; an upper bound
		if _, err := zw.Write(bin); err != nil {
			t.Fatal(err)
		}
		_ = zw.Close()
		compressed := int(gz) + base/2
		t.Logf("%s image: about %.1f MB as pulled (compressed), %.1f MB unpacked", svc, float64(compressed)/1e6, float64(len(bin)+base)/1e6)
		if compressed > 15e6 {
			t.Errorf("%s image about %.1f MB compressed, want well under 20 MB", svc, float64(compressed)/1e6)
		}
		f, err := elf.Open(out)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked: distroless/static has no loader", svc)
			}
		}
		if f.Section(".symtab") != nil {
			t.Errorf("%s is not stripped", svc)
		}
		_ = f.Close()
		// The embedded zoneinfo zip names every zone; one no code mentions.
		// The public-key service uses no time zone.
		if svc != "pubkey" && !bytes.Contains(bin, []byte("America/Argentina/ComodRivadavia")) {
			t.Errorf("%s does not embed the time zone database", svc)
		}
	}
}

type countingWriter int

func (c *countingWriter) Write(p []byte) (int, error) {
	*c += countingWriter(len(p))
	return len(p), nil
}

var _ io.Writer = (*countingWriter)(nil)

// The public-key service: what it reads exists in pubkey.Config, it starts
// with what is deployed, it reads the worker's key secret, and its shape
// suits a public endpoint that answers from memory.
func TestPublicKeyService(t *testing.T) {
	t.Parallel()
	s := dryRun(t, nil)
	svc := s.service(t, "pubkey")
	env := svc.env(t)
	vars := envcfg.Vars(reflect.TypeOf(pubkey.Config{}))
	for _, v := range []string{"PORT", "SECRETS_BACKEND", "TESLA_PRIVATE_KEY_SECRET", "PUBLIC_KEY_REFRESH"} {
		if _, ok := vars[v]; !ok {
			t.Fatalf("pubkey.Config: %s not found among %v", v, vars)
		}
	}
	for v := range env {
		if _, ok := vars[v]; !ok {
			t.Errorf("pubkey.yaml sets %s, which pubkey.Config does not read", v)
		}
	}
	if _, ok := env["PORT"]; ok {
		t.Error("pubkey.yaml sets PORT: Cloud Run sets it")
	}
	cfg, err := pubkey.LoadConfig(context.Background(), envconfig.MapLookuper(env))
	if err != nil {
		t.Fatalf("the public-key service would not start: %v", err)
	}
	if cfg.Secrets.Backend != "gcp" || cfg.Secrets.Project != project || env["LOG_FORMAT"] != "json" {
		t.Errorf("pubkey: %+v, LOG_FORMAT %q", cfg.Secrets, env["LOG_FORMAT"])
	}
	if w := s.service(t, "worker").env(t)["TESLA_PRIVATE_KEY_SECRET"]; cfg.PrivateKeySecret != w {
		t.Errorf("pubkey serves the key of %q, the worker signs with %q", cfg.PrivateKeySecret, w)
	}

	c := svc.Spec.Template.Spec.Containers[0]
	if !regexp.MustCompile(`^` + region + `-docker\.pkg\.dev/` + project + `/offpeak/pubkey@sha256:\S+$`).MatchString(c.Image) {
		t.Errorf("pubkey: image %q is not this project's pubkey image pinned by digest", c.Image)
	}
	if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 8080 {
		t.Errorf("pubkey: container ports %+v, want one, 8080", c.Ports)
	}
	// No /health to probe (it serves one path only), and a 503 before the
	// key is stored must not fail the rollout: the probe checks the port.
	if p := c.StartupProbe; p == nil || p.TCPSocket == nil || p.TCPSocket.Port != 8080 || p.HTTPGet != nil {
		t.Errorf("pubkey: startup probe %+v, want TCP on 8080", p)
	}
	if c.LivenessProbe != nil {
		t.Errorf("pubkey: a liveness probe %+v on a service without /health", c.LivenessProbe)
	}
	if got := svc.Metadata.Annotations["run.googleapis.com/ingress"]; got != "all" {
		t.Errorf("pubkey: ingress %q; Tesla and phones fetch it from the internet", got)
	}
	ann := svc.Spec.Template.Metadata.Annotations
	if ann["autoscaling.knative.dev/maxScale"] != "1" || ann["autoscaling.knative.dev/minScale"] != "0" ||
		ann["run.googleapis.com/cpu-throttling"] != "true" {
		t.Errorf("pubkey: %v; want at most one instance, scale to zero, CPU only during requests", ann)
	}
	if mem := c.Resources.Limits["memory"]; mem != "128Mi" || ann["run.googleapis.com/execution-environment"] != "gen1" {
		t.Errorf("pubkey: memory %q on %q", mem, ann["run.googleapis.com/execution-environment"])
	}
	if to := svc.Spec.Template.Spec.TimeoutSeconds; to < 11 || to > 60 {
		t.Errorf("pubkey: request timeout %d s; above the 10 s key read, and short", to)
	}
	if len(s.find("gcloud", "run", "services", "replace", "deploy/.rendered/pubkey.yaml")) != 1 {
		t.Error("the public-key service is not deployed")
	}
}

// publicMember is a member that lets anyone in.
func publicMember(m string) bool { return m == "allUsers" || m == "allAuthenticatedUsers" }

// The public-key service is the only public one, whatever the options; the
// worker and the scout stay private: no binding for everyone, and their
// invoker check is never turned off.
func TestOnlyThePublicKeyServiceIsPublic(t *testing.T) {
	t.Parallel()
	for name, extra := range map[string]map[string]string{
		"defaults":     nil,
		"every option": {"OPERATOR": "me@example.com", "PLANNER_URL": "https://planner.example.com", "TESLA_COMMAND_URL": "https://proxy.example.com"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := dryRun(t, extra)
			var public []binding
			for _, b := range bindings(t, s) {
				if publicMember(b.member) {
					public = append(public, b)
				}
			}
			want := []binding{{"run services offpeak-pubkey", "allUsers", "roles/run.invoker", ""}}
			if !slices.Equal(public, want) {
				t.Errorf("bindings for everyone: %v, want only %v", public, want)
			}
			// The one public service can be left out (the PEM hosted
			// elsewhere, or an organization policy forbids allUsers): then
			// nothing is public, and nothing of it is made.
			offEnv := maps.Clone(extra)
			if offEnv == nil {
				offEnv = map[string]string{}
			}
			offEnv["SERVE_PUBLIC_KEY"] = "0"
			off := dryRun(t, offEnv)
			if strings.Contains(off.out, "allUsers") || strings.Contains(off.out, "pubkey") {
				t.Errorf("SERVE_PUBLIC_KEY=0 still makes the public-key service:\n%s", off.out)
			}
			if len(bindings(t, off)) != len(bindings(t, s))-2 {
				t.Errorf("SERVE_PUBLIC_KEY=0: %d bindings, want %d", len(bindings(t, off)), len(bindings(t, s))-2)
			}
			for _, name := range []string{"worker", "scout", "pubkey"} {
				svc := s.service(t, name)
				for k, v := range svc.Metadata.Annotations {
					if strings.Contains(k, "invoker-iam-disabled") {
						t.Errorf("%s: %s=%s", name, k, v)
					}
				}
			}
			for _, c := range s.commands {
				if slices.Contains(c, "--no-invoker-iam-check") || slices.Contains(c, "--allow-unauthenticated") {
					t.Errorf("a service is opened by a flag: %q", c)
				}
			}
		})
	}
	// Nowhere in deploy/ is anything else opened, not even in a branch the
	// dry run does not take: one `--member allUsers`, on the pubkey service.
	members := regexp.MustCompile(`--member\s+"?(allUsers|allAuthenticatedUsers)`)
	var found []string
	for _, f := range deployFiles(t) {
		if strings.HasPrefix(f, "testdata") {
			continue // the dry run's output, checked above
		}
		data, _ := os.ReadFile(f)
		for _, line := range strings.Split(string(data), "\n") {
			if members.MatchString(line) {
				found = append(found, f+": "+strings.TrimSpace(line))
			}
			if strings.Contains(line, "--no-invoker-iam-check") && !strings.HasPrefix(strings.TrimSpace(line), "#") {
				t.Errorf("%s turns an invoker check off: %s", f, line)
			}
		}
	}
	if len(found) != 1 || !strings.Contains(found[0], "iam.sh") {
		t.Errorf("public members in deploy/: %q; want one line in iam.sh", found)
	}
	iam, _ := os.ReadFile("iam.sh")
	if !regexp.MustCompile(`add-iam-policy-binding "\$PUBKEY_SERVICE"[^\n]*\\\n\s*--member allUsers --role roles/run.invoker`).Match(iam) {
		t.Error("iam.sh: the allUsers binding is not on $PUBKEY_SERVICE")
	}
}

// After deploying, the script reads the worker's and the scout's IAM policy
// and annotations, and fails, naming the service and the fix, if either is
// open to everyone.
func TestPrivateServicesAreCheckedAfterDeploying(t *testing.T) {
	t.Parallel()
	s := dryRun(t, nil)
	checked := map[string][]string{}
	for _, q := range s.asked {
		switch {
		case len(q) > 4 && slices.Equal(q[:4], []string{"gcloud", "run", "services", "get-iam-policy"}):
			checked[q[4]] = append(checked[q[4]], "policy")
		case len(q) > 4 && slices.Equal(q[:4], []string{"gcloud", "run", "services", "describe"}) && strings.Contains(flag(q, "--format"), "annotations"):
			checked[q[4]] = append(checked[q[4]], "annotations")
		}
	}
	want := map[string][]string{"offpeak-worker": {"policy", "annotations"}, "offpeak-scout": {"policy", "annotations"}}
	if !reflect.DeepEqual(checked, want) {
		t.Errorf("checked after deploying: %v, want %v", checked, want)
	}
	// The check comes last, after the job.
	if i, j := strings.Index(s.out, "run services get-iam-policy"), strings.Index(s.out, "scheduler jobs update"); i < j {
		t.Error("the privacy check runs before the deploy is done")
	}

	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "gcloud"), []byte(fakeGcloud), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		env   map[string]string
		named []string // in the message; empty: the deploy passes
	}{
		"private":                       {nil, nil},
		"pubkey open (as it should be)": {map[string]string{"FAKE_OPEN": "offpeak-pubkey", "FAKE_CHECK_OFF": "offpeak-pubkey"}, nil},
		"worker allUsers":               {map[string]string{"FAKE_OPEN": "offpeak-worker"}, []string{"offpeak-worker", "allUsers", "remove-iam-policy-binding offpeak-worker --member allUsers --role roles/run.invoker"}},
		"scout allAuthenticatedUsers":   {map[string]string{"FAKE_OPEN_AUTH": "offpeak-scout"}, []string{"offpeak-scout", "allAuthenticatedUsers", "roles/run.developer"}},
		"worker check off":              {map[string]string{"FAKE_CHECK_OFF": "offpeak-worker"}, []string{"offpeak-worker", "invoker IAM check is off", "--invoker-iam-check"}},
		"scout check off":               {map[string]string{"FAKE_CHECK_OFF": "offpeak-scout"}, []string{"offpeak-scout", "invoker IAM check is off"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"FAKE_LOG": filepath.Join(t.TempDir(), "calls"), "RENDER_DIR": t.TempDir(), "VERSION": "v-test",
				"BIND_RETRY_SLEEP": "0", "FAKE_EXISTS": "1"}
			for _, m := range []map[string]string{baseEnv, tc.env} {
				for k, v := range m {
					env[k] = v
				}
			}
			_, stderr, err := deploySh(t, bin, env)
			if len(tc.named) == 0 {
				if err != nil {
					t.Fatalf("deploy.sh: %v\n%s", err, stderr)
				}
				return
			}
			if err == nil {
				t.Fatalf("a deploy with an open private service passed:\n%s", stderr)
			}
			for _, n := range tc.named {
				if !strings.Contains(stderr, n) {
					t.Errorf("the failure does not name %q:\n%s", n, stderr)
				}
			}
		})
	}
	// deploy/iam.sh check runs the same check alone.
	cmd := exec.Command("bash", "deploy/iam.sh", "check")
	cmd.Dir = ".."
	cmd.Env = []string{"PATH=" + bin + string(os.PathListSeparator) + os.Getenv("PATH"), "PROJECT=" + project, "REGION=" + region,
		"FAKE_LOG=" + filepath.Join(t.TempDir(), "calls"), "FAKE_OPEN=offpeak-scout"}
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "offpeak-scout") {
		t.Errorf("iam.sh check with an open scout: %v %s", err, out)
	}
}

// Cloud Build runs in BUILD_REGION (europe-west1 unless set), its bucket
// lives there, and the images still go to REGION's registry.
func TestBuildRegion(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ set, want string }{{"", "europe-west1"}, {"us-central1", "us-central1"}} {
		s := dryRun(t, map[string]string{"BUILD_REGION": tc.set})
		build := s.find("gcloud", "builds", "submit")
		if len(build) != 1 || flag(build[0], "--region") != tc.want {
			t.Errorf("BUILD_REGION=%q: builds submit %q, want --region %s", tc.set, build, tc.want)
			continue
		}
		if subs := flag(build[0], "--substitutions"); !strings.Contains(subs, "_REPO="+region+"-docker.pkg.dev/") {
			t.Errorf("BUILD_REGION=%q: images pushed to %q, want the registry in %s", tc.set, subs, region)
		}
		bucket := s.find("gcloud", "storage", "buckets", "create", "gs://"+project+"-offpeak-build")
		if len(bucket) != 1 || flag(bucket[0], "--location") != tc.want {
			t.Errorf("BUILD_REGION=%q: build bucket %q", tc.set, bucket)
		}
		for _, c := range s.find("gcloud", "run", "services", "replace") {
			if flag(c, "--region") != region {
				t.Errorf("a service deployed to %q, not REGION", flag(c, "--region"))
			}
		}
	}
}

// cloudbuild.yaml builds every image a service runs, from its Dockerfile,
// and logs to the build bucket (deploy.sh's --gcs-log-dir), the one the
// builder holds Storage Admin on.
func TestCloudBuildConfig(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("cloudbuild.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cb struct {
		Steps []struct {
			ID   string   `yaml:"id"`
			Args []string `yaml:"args"`
		} `yaml:"steps"`
		Images  []string `yaml:"images"`
		Options struct {
			Logging string `yaml:"logging"`
		} `yaml:"options"`
	}
	if err := yaml.Unmarshal(data, &cb); err != nil {
		t.Fatal(err)
	}
	for _, svc := range []string{"worker", "scout", "pubkey"} {
		tag := "${_REPO}/" + svc + ":${_VERSION}"
		built := false
		for _, st := range cb.Steps {
			if slices.Contains(st.Args, "Dockerfile."+svc) && slices.Contains(st.Args, tag) {
				built = true
			}
		}
		if !built || !slices.Contains(cb.Images, tag) {
			t.Errorf("cloudbuild.yaml does not build and push %s from Dockerfile.%s", tag, svc)
		}
	}
	if cb.Options.Logging != "GCS_ONLY" {
		t.Errorf("logging %q: the build logs to the build bucket, GCS_ONLY", cb.Options.Logging)
	}
	s := dryRun(t, nil)
	build := s.find("gcloud", "builds", "submit")[0]
	if got := flag(build, "--gcs-log-dir"); got != "gs://"+project+"-offpeak-build/logs" {
		t.Errorf("--gcs-log-dir %q, want the build bucket", got)
	}
	for _, b := range bindings(t, s) {
		if b.on == "storage buckets gs://"+project+"-offpeak-build" && b.role != "roles/storage.admin" {
			t.Errorf("the builder holds %s on its logs bucket; Google documents roles/storage.admin", b.role)
		}
	}
}

// destroySh runs deploy/destroy.sh like deploySh runs deploy.sh.
func destroySh(t *testing.T, binDir string, env map[string]string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command("bash", "deploy/destroy.sh")
	cmd.Dir = ".."
	cmd.Env = []string{"PATH=" + binDir + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + t.TempDir(),
		"PROJECT=" + project, "REGION=" + region}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// deleted lists the delete commands in order, as "kind name".
func deleted(s script) []string {
	var out []string
	for _, c := range s.commands {
		for i, w := range c {
			if (w == "delete" || w == "rm") && i+1 < len(c) {
				name := c[i+1]
				if name == "--recursive" && i+2 < len(c) {
					name = c[i+2]
				}
				out = append(out, strings.Join(c[1:i], " ")+" "+name)
				break
			}
		}
	}
	return out
}

func TestDestroy(t *testing.T) {
	t.Parallel()
	always := []string{
		"scheduler jobs offpeak-scout-tick",
		"run services offpeak-scout", "run services offpeak-worker", "run services offpeak-pubkey",
		"iam service-accounts offpeak-scout@demo-project.iam.gserviceaccount.com",
		"iam service-accounts offpeak-worker@demo-project.iam.gserviceaccount.com",
		"iam service-accounts offpeak-pubkey@demo-project.iam.gserviceaccount.com",
		"iam service-accounts offpeak-scheduler@demo-project.iam.gserviceaccount.com",
		"iam service-accounts offpeak-builder@demo-project.iam.gserviceaccount.com",
	}
	storage := []string{"storage gs://demo-project-offpeak-state", "storage gs://demo-project-offpeak-build",
		"artifacts repositories offpeak"}
	secretsGone := []string{"secrets fleet-tokens", "secrets tesla-client-id", "secrets tesla-client-secret",
		"secrets tesla-refresh-token", "secrets tesla-private-key", "secrets planner-api-key", "secrets tesla-domain"}

	// Without CONFIRM=1 (or with DRY_RUN=1) it prints and runs nothing.
	for _, env := range []map[string]string{nil, {"CONFIRM": "0"}, {"DRY_RUN": "1", "CONFIRM": "1"}} {
		bin, mark := tripwire(t)
		out, stderr, err := destroySh(t, bin, env)
		if err != nil {
			t.Fatalf("%v: %v\n%s", env, err, stderr)
		}
		if called, err := os.ReadFile(mark); err == nil {
			t.Fatalf("%v: destroy ran cloud commands:\n%s", env, called)
		}
		if got := deleted(parseScript(t, out)); !slices.Equal(got, always) {
			t.Errorf("%v: would delete\n%s\nwant\n%s", env, strings.Join(got, "\n"), strings.Join(always, "\n"))
		}
		if !strings.Contains(stderr, "nothing was deleted") || !strings.Contains(stderr, "secrets are kept") {
			t.Errorf("%v: stderr %s", env, stderr)
		}
		if env == nil && !strings.Contains(stderr, "CONFIRM=1") {
			t.Errorf("the dry run does not say how to delete: %s", stderr)
		}
	}

	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "gcloud"), []byte(fakeGcloud), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		env  map[string]string
		want []string
	}{
		"confirmed":            {map[string]string{"CONFIRM": "1", "FAKE_EXISTS": "1"}, always},
		"everything":           {map[string]string{"CONFIRM": "1", "FAKE_EXISTS": "1", "DELETE_BUCKETS": "1", "DELETE_REPOSITORY": "1", "KEEP_SECRETS": "0"}, append(append(slices.Clone(always), storage...), secretsGone...)},
		"secrets kept":         {map[string]string{"CONFIRM": "1", "FAKE_EXISTS": "1", "KEEP_SECRETS": "1", "DELETE_BUCKETS": "1"}, append(slices.Clone(always), storage[:2]...)},
		"already gone (again)": {map[string]string{"CONFIRM": "1", "KEEP_SECRETS": "0", "DELETE_BUCKETS": "1"}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			log := filepath.Join(t.TempDir(), "calls")
			env := map[string]string{"FAKE_LOG": log}
			for k, v := range tc.env {
				env[k] = v
			}
			_, stderr, err := destroySh(t, bin, env)
			if err != nil {
				t.Fatalf("destroy.sh: %v\n%s", err, stderr)
			}
			calls, _ := os.ReadFile(log)
			if got := deleted(parseScript(t, string(calls))); !slices.Equal(got, tc.want) {
				t.Errorf("deleted\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
			for _, c := range parseScript(t, string(calls)).commands {
				if slices.Contains(c, "delete") && !slices.Contains(c, "--quiet") {
					t.Errorf("a delete that would stop to ask: %q", c)
				}
				if slices.Contains(c, "roles") && slices.Contains(c, "delete") {
					t.Errorf("the custom role is deleted: %q", c)
				}
			}
			if tc.env["KEEP_SECRETS"] == "0" && !strings.Contains(stderr, "pairing") {
				t.Errorf("deleting the secrets without saying what it costs: %s", stderr)
			}
		})
	}

	// What deploy.sh creates, destroy.sh takes down: every account, service
	// and the job.
	d := dryRun(t, nil)
	var made []string
	made = append(made, "scheduler jobs "+d.find("gcloud", "scheduler", "jobs", "create", "http")[0][5])
	for _, c := range d.find("gcloud", "run", "services", "replace") {
		name := strings.TrimSuffix(filepath.Base(c[4]), ".yaml")
		made = append(made, "run services "+d.service(t, name).Metadata.Name)
	}
	for _, c := range d.find("gcloud", "iam", "service-accounts", "create") {
		made = append(made, "iam service-accounts "+c[4]+"@"+project+".iam.gserviceaccount.com")
	}
	for _, m := range made {
		if !slices.Contains(always, m) {
			t.Errorf("deploy.sh makes %s, which destroy.sh leaves", m)
		}
	}

	bin2, _ := tripwire(t)
	cmd := exec.Command("bash", "deploy/destroy.sh")
	cmd.Dir = ".."
	cmd.Env = []string{"PATH=" + bin2 + string(os.PathListSeparator) + os.Getenv("PATH"), "PROJECT=" + project}
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "REGION") {
		t.Errorf("destroy.sh without REGION: %v %s", err, out)
	}
}

// Each private service accepts the audience its callers put in their ID
// tokens: the scout's WORKER_URL is one of the worker's SERVICE_URL, the
// job's OIDC audience one of the scout's; both list their deterministic URL.
func TestAudiencesAgree(t *testing.T) {
	t.Parallel()
	s := dryRun(t, nil)
	w, sc := s.service(t, "worker").env(t), s.service(t, "scout").env(t)
	job := s.find("gcloud", "scheduler", "jobs", "update", "http")[0]
	for _, tc := range []struct{ callee, urls, audience string }{
		{"offpeak-worker", w["SERVICE_URL"], sc["WORKER_URL"]},
		{"offpeak-scout", sc["SERVICE_URL"], flag(job, "--oidc-token-audience")},
	} {
		list := strings.Split(tc.urls, ",")
		if !slices.Contains(list, tc.audience) {
			t.Errorf("%s: SERVICE_URL %q does not accept its callers' audience %q", tc.callee, tc.urls, tc.audience)
		}
		if !slices.Contains(list, "https://"+tc.callee+"-123456789012."+region+".run.app") {
			t.Errorf("%s: SERVICE_URL %q lacks the deterministic URL", tc.callee, tc.urls)
		}
	}
	if _, ok := s.service(t, "pubkey").env(t)["SERVICE_URL"]; ok {
		t.Error("the public-key service checks no caller: it needs no SERVICE_URL")
	}
}
