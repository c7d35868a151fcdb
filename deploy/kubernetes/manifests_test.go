// Package kubernetes checks ringer's Kubernetes manifests with the Kubernetes API types: each document decodes
// strictly (an unknown or misspelt field fails), and the Deployments have what the scaled-out shape needs.
package kubernetes

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// manifests decodes every document of every *.yaml here into its typed object, strictly.
func manifests(t *testing.T) (deps []appsv1.Deployment, svcs []corev1.Service, cms []corev1.ConfigMap) {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(b, []byte("\n---\n")) {
			var head struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal(doc, &head); err != nil {
				t.Fatalf("%s #%d: %v", f, i, err)
			}
			where := fmt.Sprintf("%s #%d %s", f, i, head.Kind)
			switch head.APIVersion + " " + head.Kind {
			case "apps/v1 Deployment":
				var d appsv1.Deployment
				if err := yaml.UnmarshalStrict(doc, &d); err != nil {
					t.Errorf("%s: %v", where, err)
				}
				deps = append(deps, d)
			case "v1 Service":
				var s corev1.Service
				if err := yaml.UnmarshalStrict(doc, &s); err != nil {
					t.Errorf("%s: %v", where, err)
				}
				svcs = append(svcs, s)
			case "v1 ConfigMap":
				var c corev1.ConfigMap
				if err := yaml.UnmarshalStrict(doc, &c); err != nil {
					t.Errorf("%s: %v", where, err)
				}
				cms = append(cms, c)
			default:
				t.Errorf("%s: a kind this test does not decode (%s %s): add it", where, head.APIVersion, head.Kind)
			}
		}
	}
	return deps, svcs, cms
}

func TestEveryManifestDecodesStrictlyWithTheKubernetesTypes(t *testing.T) {
	deps, svcs, cms := manifests(t)
	var names []string
	for _, d := range deps {
		names = append(names, d.Name)
	}
	for _, want := range []string{"ringer-api", "ringer-worker-ring", "ringer-worker-notify"} {
		if !slices.Contains(names, want) {
			t.Errorf("no Deployment %s among %v", want, names)
		}
	}
	if len(svcs) != 1 || svcs[0].Name != "ringer-api" {
		t.Errorf("Services %v, want ringer-api alone", svcs)
	}
	if len(cms) != 1 || cms[0].Name != "ringer" {
		t.Errorf("ConfigMaps %v, want ringer alone", cms)
	}
}

func TestEveryDeploymentIsProbedRequestsCPUAndReadsSecretsFromFiles(t *testing.T) {
	deps, svcs, cms := manifests(t)
	for _, d := range deps {
		if sel := d.Spec.Selector.MatchLabels; !labelsMatch(sel, d.Spec.Template.Labels) {
			t.Errorf("%s: selector %v does not select its pods %v", d.Name, sel, d.Spec.Template.Labels)
		}
		if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g == nil || *g <= 30 {
			t.Errorf("%s: terminationGracePeriodSeconds must outlast RINGER_SHUTDOWN_TIMEOUT (30s)", d.Name)
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			probe(t, d.Name+" readiness", c.ReadinessProbe, "/readyz")
			probe(t, d.Name+" liveness", c.LivenessProbe, "/healthz")
			if c.Resources.Requests.Cpu().IsZero() {
				t.Errorf("%s: no CPU request", d.Name)
			}
			mounted := false
			for _, m := range c.VolumeMounts {
				mounted = mounted || m.MountPath == "/run/secrets/ringer"
			}
			if !mounted {
				t.Errorf("%s: the Secret is not mounted at /run/secrets/ringer", d.Name)
			}
			for _, e := range c.Env {
				if strings.Contains(e.Name, "SECRET") || strings.Contains(e.Name, "PASSWORD") || e.Name == "REDIS_URL" {
					t.Errorf("%s: %s is set in the environment; mount it and name it with %s_FILE", d.Name, e.Name, e.Name)
				}
			}
		}
	}
	for _, c := range cms {
		for k := range c.Data {
			if (strings.Contains(k, "SECRET") || strings.Contains(k, "PASSWORD") || k == "REDIS_URL") && !strings.HasSuffix(k, "_FILE") {
				t.Errorf("ConfigMap %s holds %s: secrets belong in the Secret, named by %s_FILE", c.Name, k, k)
			}
		}
	}
	for _, s := range svcs {
		found := false
		for _, d := range deps {
			found = found || labelsMatch(s.Spec.Selector, d.Spec.Template.Labels)
		}
		if !found {
			t.Errorf("Service %s selects no Deployment's pods", s.Name)
		}
	}
}

func TestRingWorkersGetMoreCPUThanNotifyWorkers(t *testing.T) {
	deps, _, _ := manifests(t)
	cpu := map[string]int64{}
	queues := map[string]string{}
	for _, d := range deps {
		c := d.Spec.Template.Spec.Containers[0]
		cpu[d.Name] = c.Resources.Requests.Cpu().MilliValue()
		for _, e := range c.Env {
			if e.Name == "RINGER_QUEUES" {
				queues[d.Name] = e.Value
			}
		}
	}
	if queues["ringer-worker-ring"] != "ring" || queues["ringer-worker-notify"] != "notify" {
		t.Fatalf("RINGER_QUEUES %v: each worker Deployment serves its own queue", queues)
	}
	if cpu["ringer-worker-ring"] <= cpu["ringer-worker-notify"] {
		t.Errorf("ring workers request %dm CPU, notify workers %dm: rings need the larger share", cpu["ringer-worker-ring"], cpu["ringer-worker-notify"])
	}
}

func probe(t *testing.T, what string, p *corev1.Probe, path string) {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Errorf("%s: no HTTP probe", what)
		return
	}
	if p.HTTPGet.Path != path || p.HTTPGet.Port != intstr.FromString("http") {
		t.Errorf("%s: probes %s on %v, want %s on the http port", what, p.HTTPGet.Path, p.HTTPGet.Port.String(), path)
	}
}

func labelsMatch(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}
