package ops

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// composeService is the part of a docker-compose service this test reads.
type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Environment map[string]string `yaml:"environment"`
	Ports       []string          `yaml:"ports"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Deploy struct {
		Replicas int `yaml:"replicas"`
	} `yaml:"deploy"`
	StopGracePeriod string `yaml:"stop_grace_period"`
}

// envDefault is the value compose gives ${NAME:-default}, ${NAME:?message} (none) or a plain value.
func envDefault(v string) string {
	if m := regexp.MustCompile(`^\$\{[A-Z_]+:-(.*)\}$`).FindStringSubmatch(v); m != nil {
		return m[1]
	}
	if strings.HasPrefix(v, "${") {
		return ""
	}
	return v
}

func TestDockerComposeRunsRedisOneAPITwoWorkersAndTheDashboard(t *testing.T) {
	t.Parallel()
	root := repoRoot(t)
	raw, err := os.ReadFile(filepath.Join(root, "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Services map[string]composeService `yaml:"services"`
		Volumes  map[string]any            `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	svc := file.Services
	for _, name := range []string{"redis", "api", "worker", "dashboard"} {
		if _, ok := svc[name]; !ok {
			t.Fatalf("docker-compose.yml has no %q service (services: %v)", name, keys(svc))
		}
	}

	// Redis: healthy before ringer starts, its data on a volume.
	if hc := svc["redis"].Healthcheck; hc == nil || !slices.Contains(hc.Test, "ping") {
		t.Errorf("redis has no ping healthcheck: %+v", svc["redis"].Healthcheck)
	}

	// The variables ringer reads, from its own configuration code.
	cfgSrc, err := os.ReadFile(filepath.Join(root, "cmd", "ringer", "config.go"))
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, m := range regexp.MustCompile(`"((?:RINGER|REDIS|FCM|APNS)_[A-Z_]+)"`).FindAllStringSubmatch(string(cfgSrc), -1) {
		known[m[1]] = true
	}

	for name, cmd := range map[string]string{"api": "api", "worker": "worker", "dashboard": "dashboard"} {
		s := svc[name]
		if !slices.Equal(s.Command, []string{cmd}) {
			t.Errorf("%s runs %v, want [%s]", name, s.Command, cmd)
		}
		if s.Build == nil {
			t.Errorf("%s is not built from the Dockerfile (no build:)", name)
		}
		if s.DependsOn["redis"].Condition != "service_healthy" {
			t.Errorf("%s does not wait for a healthy redis: %+v", name, s.DependsOn)
		}
		env := s.Environment
		if got := envDefault(env["REDIS_URL"]); !strings.HasPrefix(got, "redis://redis:6379") {
			t.Errorf("%s REDIS_URL = %q, want the redis service", name, env["REDIS_URL"])
		}
		if got := envDefault(env["RINGER_ADDR"]); !strings.HasPrefix(got, "0.0.0.0:") {
			t.Errorf("%s RINGER_ADDR = %q: a container must listen on 0.0.0.0", name, env["RINGER_ADDR"])
		}
		for k := range env {
			if !known[k] {
				t.Errorf("%s sets %s, which ringer does not read (cmd/ringer/config.go)", name, k)
			}
		}
		if d, err := time.ParseDuration(s.StopGracePeriod); err != nil || d <= 30*time.Second {
			t.Errorf("%s stop_grace_period %q: want longer than RINGER_SHUTDOWN_TIMEOUT (30s) so SIGTERM drains", name, s.StopGracePeriod)
		}
	}
	if r := svc["worker"].Deploy.Replicas; r != 2 {
		t.Errorf("worker replicas = %d, want 2", r)
	}
	if !strings.HasPrefix(svc["api"].Environment["RINGER_API_SECRET"], "${RINGER_API_SECRET:?") {
		t.Errorf("api RINGER_API_SECRET = %q, want ${RINGER_API_SECRET:?...} (required, never a default)", svc["api"].Environment["RINGER_API_SECRET"])
	}
	dash := svc["dashboard"].Environment
	if dash["RINGER_DASHBOARD_USER"] == "" || !strings.HasPrefix(dash["RINGER_DASHBOARD_PASSWORD"], "${RINGER_DASHBOARD_PASSWORD:?") {
		t.Errorf("dashboard login: user %q, password %q; want a user and a required password", dash["RINGER_DASHBOARD_USER"], dash["RINGER_DASHBOARD_PASSWORD"])
	}
	if len(svc["api"].Ports) == 0 || len(svc["dashboard"].Ports) == 0 {
		t.Errorf("api ports %v, dashboard ports %v: both must be published", svc["api"].Ports, svc["dashboard"].Ports)
	}
	if len(svc["worker"].Ports) != 0 {
		t.Errorf("worker publishes ports %v: two replicas cannot share a host port", svc["worker"].Ports)
	}

	// Where the Docker client has the compose plugin, it must accept the file too.
	if exec.Command("docker", "compose", "version").Run() != nil {
		t.Log("docker compose is not installed here: the YAML checks above stand for `docker compose config`")
		return
	}
	cmd := exec.Command("docker", "compose", "-f", filepath.Join(root, "docker-compose.yml"), "config", "--quiet")
	cmd.Env = append(os.Environ(), "RINGER_API_SECRET=s", "RINGER_DASHBOARD_PASSWORD=p")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("docker compose config: %v\n%s", err, out)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
