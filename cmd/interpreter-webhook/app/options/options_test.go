package options

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestFlagsAndValidate(t *testing.T) {
	cases := []struct {
		args []string
		err  string
	}{
		{nil, ""},
		{[]string{"--secure-port=0"}, "--secure-port"},
		{[]string{"--secure-port=70000"}, "--secure-port"},
		{[]string{"--tls-min-version=1.0"}, "--tls-min-version"},
		{[]string{"--cert-dir="}, "--cert-dir"},
		{[]string{"--tls-cert-file-name=../x.crt"}, "plain file name"},
		{[]string{"--kube-api-qps=0"}, "--kube-api-qps"},
		{[]string{"--leader-elect", "--leader-election-id="}, "--leader-election-id"},
		{[]string{"--shutdown-timeout=-1s"}, "--shutdown-timeout"},
		{[]string{"--controllers=*,-restoreplan"}, ""},
		{[]string{"--controllers=checkpoints,migrations"}, ""},
		{[]string{"--controllers=*,-restorplan"}, "unknown controller"},
		{[]string{"--secret-namespace="}, "--secret-namespace"},
		{[]string{"--reconcile-timeout=0s"}, "--reconcile-timeout"},
		{[]string{"--scheduled-checkpoint-deferral=0s"}, ""},
		{[]string{"--scheduled-checkpoint-deferral=-1s"}, "--scheduled-checkpoint-deferral"},
		{[]string{"--checkpoint-delivery=proxy"}, ""},
		{[]string{"--checkpoint-delivery=propagation"}, ""},
		{[]string{"--checkpoint-delivery=ssh"}, "--checkpoint-delivery"},
		{[]string{"--bind-address=127.0.0.1", "--secure-port=9443", "--tls-min-version=1.2", "--cert-dir=/certs"}, ""},
	}
	for _, tc := range cases {
		o := New()
		fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
		o.AddFlags(fs)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		err := o.Validate()
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%v: error %v, want %q", tc.args, err, tc.err)
		}
	}
}

func TestComplete(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	o := New()
	if err := o.Complete(); err != nil || o.RestConfig != nil {
		t.Fatalf("no kubeconfig: %v %v", o.RestConfig, err)
	}
	o.Kubeconfig = filepath.Join(t.TempDir(), "missing")
	if err := o.Complete(); err == nil {
		t.Fatal("missing kubeconfig accepted")
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	_ = os.WriteFile(path, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://karmada.example:5443"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`), 0o600)
	o = New()
	o.Kubeconfig = path
	o.KubeAPIQPS = 7
	if err := o.Complete(); err != nil || o.RestConfig.Host != "https://karmada.example:5443" || o.RestConfig.QPS != 7 {
		t.Fatalf("kubeconfig: %+v %v", o.RestConfig, err)
	}
}
