package deploy_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/offpeak-charging/offpeak/internal/envcfg"
	"github.com/offpeak-charging/offpeak/internal/scout"
	"github.com/offpeak-charging/offpeak/internal/worker"
)

type service struct {
	Metadata struct {
		Name string `yaml:"name"`
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
						Name  string `yaml:"name"`
						Value string `yaml:"value"`
					} `yaml:"env"`
					StartupProbe  *probe `yaml:"startupProbe"`
					LivenessProbe *probe `yaml:"livenessProbe"`
				} `yaml:"containers"`
			} `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port int    `yaml:"port"`
	} `yaml:"httpGet"`
}

// dryRunEnv is what the golden file was made with.
var dryRunEnv = []string{"DRY_RUN=1", "PROJECT=demo-project", "REGION=europe-central2", "HOME_LAT=52.2297", "HOME_LON=21.0122",
	"PATH=" + os.Getenv("PATH"), "HOME=" + os.TempDir()}

// dryRun runs deploy.sh in dry-run mode from the repository root.
func dryRun(t *testing.T) (string, map[string]service) {
	t.Helper()
	cmd := exec.Command("bash", "deploy/deploy.sh")
	cmd.Dir = ".."
	cmd.Env = dryRunEnv
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("deploy.sh: %v\n%s", err, stderr.String())
	}
	rendered := map[string]service{}
	for _, name := range []string{"worker", "scout"} {
		data, err := os.ReadFile(filepath.Join(".rendered", name+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(stripComments(string(data)), "${") {
			t.Errorf("%s.yaml: a placeholder was left unfilled", name)
		}
		var s service
		if err := yaml.Unmarshal(data, &s); err != nil {
			t.Fatalf("%s.yaml: %v", name, err)
		}
		rendered[name] = s
	}
	return stdout.String(), rendered
}

func stripComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

func TestDryRunMatchesGolden(t *testing.T) {
	out, _ := dryRun(t)
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
		t.Errorf("dry-run output differs from %s (UPDATE_GOLDEN=1 rewrites it):\n%s", golden, out)
	}
}

func TestServicesMatchTheConfiguration(t *testing.T) {
	out, rendered := dryRun(t)
	configs := map[string]reflect.Type{"worker": reflect.TypeOf(worker.Config{}), "scout": reflect.TypeOf(scout.Config{})}
	accounts := map[string]string{"worker": "offpeak-worker@demo-project.iam.gserviceaccount.com", "scout": "offpeak-scout@demo-project.iam.gserviceaccount.com"}
	for name, typ := range configs {
		s := rendered[name]
		vars := envcfg.Vars(typ)
		spec := s.Spec.Template.Spec
		if len(spec.Containers) != 1 {
			t.Fatalf("%s: %d containers", name, len(spec.Containers))
		}
		c := spec.Containers[0]
		set := map[string]string{}
		for _, e := range c.Env {
			if _, ok := vars[e.Name]; !ok {
				t.Errorf("%s.yaml sets %s, which %s.Config does not read", name, e.Name, name)
			}
			set[e.Name] = e.Value
		}
		for v, required := range vars {
			if required && set[v] == "" {
				t.Errorf("%s.yaml does not set the required %s", name, v)
			}
		}
		if _, ok := set["PORT"]; ok {
			t.Errorf("%s.yaml sets PORT: Cloud Run sets it", name)
		}
		if set["SECRETS_BACKEND"] != "gcp" || set["STATE_BACKEND"] != "gcs" {
			t.Errorf("%s must use Secret Manager and GCS in production: %v", name, set)
		}
		if len(c.Ports) != 1 || c.Ports[0].ContainerPort != 8080 {
			t.Errorf("%s: container port %v, want 8080", name, c.Ports)
		}
		for kind, p := range map[string]*probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe} {
			if p == nil || p.HTTPGet.Path != "/health" || p.HTTPGet.Port != 8080 {
				t.Errorf("%s: %s probe %+v, want GET /health on 8080", name, kind, p)
			}
		}
		if !regexp.MustCompile(`@sha256:`).MatchString(c.Image) {
			t.Errorf("%s: image %q is not pinned by digest", name, c.Image)
		}
		if spec.ServiceAccountName != accounts[name] {
			t.Errorf("%s: runs as %q, want %q", name, spec.ServiceAccountName, accounts[name])
		}
		if !strings.Contains(out, "--member serviceAccount:"+accounts[name]) {
			t.Errorf("the IAM commands grant nothing to %s's account %s", name, accounts[name])
		}
		if spec.TimeoutSeconds < 300 {
			t.Errorf("%s: timeout %d s, want at least 300 (TICK_TIMEOUT 240 s, worst cycle)", name, spec.TimeoutSeconds)
		}
	}
	w := rendered["worker"].Spec.Template
	if w.Metadata.Annotations["autoscaling.knative.dev/maxScale"] != "1" || w.Spec.ContainerConcurrency <= 1 {
		t.Errorf("worker: maxScale %q, concurrency %d; want 1 and above 1", w.Metadata.Annotations["autoscaling.knative.dev/maxScale"], w.Spec.ContainerConcurrency)
	}
	if got := envOf(rendered["worker"], "ALLOWED_INVOKERS"); got != accounts["scout"] {
		t.Errorf("worker ALLOWED_INVOKERS = %q, want the scout's account", got)
	}
	sched := "offpeak-scheduler@demo-project.iam.gserviceaccount.com"
	if got := envOf(rendered["scout"], "SCOUT_ALLOWED_INVOKERS"); got != sched {
		t.Errorf("scout SCOUT_ALLOWED_INVOKERS = %q, want the scheduler's account", got)
	}
	job := lineWith(out, "gcloud scheduler jobs create")
	for _, want := range []string{"--oidc-service-account-email " + sched, `--schedule \*/15\ \*\ \*\ \*\ \*`, "--attempt-deadline 320s", "--max-retry-attempts", "--min-backoff", "/tick"} {
		if !strings.Contains(job, want) {
			t.Errorf("scheduler job lacks %q: %s", want, job)
		}
	}
	if !strings.Contains(lineWith(out, "services add-iam-policy-binding offpeak-scout"), "serviceAccount:"+sched+" --role roles/run.invoker") {
		t.Error("the scheduler's account may not invoke the scout")
	}
	if !strings.Contains(lineWith(out, "services add-iam-policy-binding offpeak-worker"), "serviceAccount:"+accounts["scout"]+" --role roles/run.invoker") {
		t.Error("the scout's account may not invoke the worker")
	}
}

func envOf(s service, name string) string {
	for _, e := range s.Spec.Template.Spec.Containers[0].Env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

func lineWith(out, substr string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, substr) {
			return l
		}
	}
	return ""
}

func TestNoMovingTags(t *testing.T) {
	t.Parallel()
	files, _ := filepath.Glob("*")
	files = append(files, "../Dockerfile.worker", "../Dockerfile.scout")
	for _, f := range files {
		if fi, err := os.Stat(f); err != nil || fi.IsDir() || strings.HasSuffix(f, "_test.go") {
			continue
		}
		data, _ := os.ReadFile(f)
		if strings.Contains(string(data), ":latest") {
			t.Errorf("%s mentions :latest", f)
		}
	}
}

func TestIAMIsScopedAndIdempotent(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("iam.sh")
	if err != nil {
		t.Fatal(err)
	}
	script := string(data)
	if regexp.MustCompile(`projects\s+add-iam-policy-binding`).MatchString(script) {
		t.Error("iam.sh grants a project-wide role")
	}
	if n := strings.Count(script, "run_or_create"); n < 4 {
		t.Errorf("iam.sh creates resources without checking they exist (%d run_or_create)", n)
	}
	if strings.Contains(script, "versions add") {
		t.Error("iam.sh must never write a secret value")
	}
}

func TestDockerfiles(t *testing.T) {
	t.Parallel()
	for _, svc := range []string{"worker", "scout"} {
		data, err := os.ReadFile("../Dockerfile." + svc)
		if err != nil {
			t.Fatal(err)
		}
		df := string(data)
		stages := regexp.MustCompile(`(?m)^FROM `).FindAllStringIndex(df, -1)
		if len(stages) < 2 {
			t.Fatalf("Dockerfile.%s is not multi-stage", svc)
		}
		final := df[stages[len(stages)-1][0]:]
		for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "./cmd/" + svc} {
			if !strings.Contains(df, want) {
				t.Errorf("Dockerfile.%s lacks %q", svc, want)
			}
		}
		for _, want := range []string{"distroless/static", "USER nonroot", `ENTRYPOINT ["/` + svc + `"]`} {
			if !strings.Contains(final, want) {
				t.Errorf("Dockerfile.%s final stage lacks %q", svc, want)
			}
		}
		for _, bad := range []string{"apt-get", "apk ", "/bin/sh", "RUN "} {
			if strings.Contains(final, bad) {
				t.Errorf("Dockerfile.%s final stage has %q: it must have no shell and run nothing", svc, bad)
			}
		}
		tz, err := os.ReadFile("../cmd/" + svc + "/tzdata.go")
		if err != nil || !strings.Contains(string(tz), `import _ "time/tzdata"`) {
			t.Errorf("cmd/%s must embed time/tzdata: %v", svc, err)
		}
	}
}

func TestDeployNamesMissingSettings(t *testing.T) {
	t.Parallel()
	cmd := exec.Command("bash", "deploy/deploy.sh")
	cmd.Dir = ".."
	cmd.Env = []string{"DRY_RUN=1", "PATH=" + os.Getenv("PATH")}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "PROJECT") || !strings.Contains(string(out), "REGION") || !strings.Contains(string(out), "HOME_LAT") {
		t.Errorf("deploy.sh without settings: %v %s", err, out)
	}
}
