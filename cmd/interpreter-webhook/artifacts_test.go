package main

import (
	"bufio"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/stateshift/stateshift/cmd/interpreter-webhook/app/options"
	"github.com/stateshift/stateshift/pkg/interpreter"
	"github.com/stateshift/stateshift/test/testenv"
)

func rootDir(t testing.TB) string { return testenv.Root() }

// documents splits a multi-document YAML file.
func documents(t *testing.T, name string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(rootDir(t), "artifacts", "interpreter", name))
	if err != nil {
		t.Fatal(err)
	}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(b)))
	var out [][]byte
	for {
		doc, err := r.Read()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(doc)) > 0 {
			out = append(out, doc)
		}
	}
}

func TestDeploymentHardening(t *testing.T) {
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict(documents(t, "deployment.yaml")[0], &d); err != nil {
		t.Fatal(err)
	}
	if d.Namespace != "stateshift-system" || d.Spec.Template.Spec.ServiceAccountName != "stateshift-interpreter-webhook" {
		t.Fatalf("deployment %s/%s sa %s", d.Namespace, d.Name, d.Spec.Template.Spec.ServiceAccountName)
	}
	pod := d.Spec.Template.Spec
	if pod.SecurityContext == nil || pod.SecurityContext.RunAsNonRoot == nil || !*pod.SecurityContext.RunAsNonRoot ||
		pod.SecurityContext.SeccompProfile == nil || pod.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Fatalf("pod security context %+v", pod.SecurityContext)
	}
	if len(pod.Containers) != 1 {
		t.Fatal("one container")
	}
	c := pod.Containers[0]
	sc := c.SecurityContext
	if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot ||
		sc.RunAsUser == nil || *sc.RunAsUser != 65532 || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0 ||
		sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Fatalf("container security context %+v", sc)
	}
	if !strings.HasPrefix(c.Image, "ghcr.io/stateshift/interpreter-webhook:") {
		t.Fatalf("image %s", c.Image)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Fatalf("resources %+v", c.Resources)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" || c.LivenessProbe == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Fatal("probes on /readyz and /healthz")
	}

	// The flags parse and validate, and the ports and mount agree with them.
	o := options.New()
	fs := pflag.NewFlagSet("interpreter-webhook", pflag.ContinueOnError)
	o.AddFlags(fs)
	if err := fs.Parse(c.Args); err != nil {
		t.Fatalf("args %v: %v", c.Args, err)
	}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	port := func(name string) int32 {
		for _, p := range c.Ports {
			if p.Name == name {
				return p.ContainerPort
			}
		}
		t.Fatalf("no port %s", name)
		return 0
	}
	if port("https") != int32(o.SecurePort) || !strings.HasSuffix(o.HealthProbeBindAddress, ":"+itoa(port("probes"))) ||
		!strings.HasSuffix(o.MetricsBindAddress, ":"+itoa(port("metrics"))) {
		t.Fatalf("ports %+v vs flags %+v", c.Ports, o)
	}
	mounted := false
	for _, m := range c.VolumeMounts {
		if m.MountPath == o.CertDir && m.ReadOnly {
			mounted = true
		}
	}
	if !mounted || len(pod.Volumes) != 1 || pod.Volumes[0].Secret == nil || pod.Volumes[0].Secret.SecretName != "stateshift-interpreter-webhook-certs" {
		t.Fatalf("certificate Secret must be mounted read-only at %s: %+v %+v", o.CertDir, c.VolumeMounts, pod.Volumes)
	}

	var svc corev1.Service
	if err := yaml.UnmarshalStrict(documents(t, "service.yaml")[0], &svc); err != nil {
		t.Fatal(err)
	}
	if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 443 || svc.Spec.Ports[0].TargetPort != intstr.FromString("https") ||
		svc.Spec.Selector["app.kubernetes.io/name"] != d.Spec.Template.Labels["app.kubernetes.io/name"] {
		t.Fatalf("service %+v", svc.Spec)
	}
}

func TestWebhookConfigurationTemplate(t *testing.T) {
	var cfg configv1alpha1.ResourceInterpreterWebhookConfiguration
	if err := yaml.UnmarshalStrict(documents(t, "webhook-configuration.yaml")[0], &cfg); err != nil {
		t.Fatal(err)
	}
	for _, w := range cfg.Webhooks {
		if w.ClientConfig.Service == nil || *w.ClientConfig.Service.Path != interpreter.Path || w.ClientConfig.Service.Name != "stateshift-interpreter-webhook" {
			t.Fatalf("%s clientConfig %+v", w.Name, w.ClientConfig)
		}
	}
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }
