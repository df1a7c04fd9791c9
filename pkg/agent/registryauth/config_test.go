package registryauth

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

const testPassword = "s3cr3t-Pa55word-do-not-print"

func dockerSecret(t *testing.T, auths map[string]any) *corev1.Secret {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"auths": auths})
	if err != nil {
		t.Fatal(err)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "pull"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: raw},
	}
}

func TestParseAuthForms(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString([]byte("alice:" + testPassword))
	cfg, err := Parse(dockerSecret(t, map[string]any{
		"127.0.0.1:5000":              map[string]string{"auth": b64},
		"https://index.docker.io/v1/": map[string]string{"username": "bob", "password": testPassword},
		"http://reg.example:8443/x":   map[string]string{"identitytoken": "tok-" + testPassword},
	}))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if got, want := fmt.Sprint(cfg.Registries()), "[127.0.0.1:5000 index.docker.io reg.example:8443]"; got != want {
		t.Fatalf("registries %s, want %s", got, want)
	}
	kc := cfg.Keychain()
	for _, tc := range []struct {
		ref      string
		user     string
		token    string
		anonymus bool
	}{
		{ref: "127.0.0.1:5000/team/app:1", user: "alice"},
		{ref: "docker.io/library/busybox", user: "bob"},
		{ref: "busybox", user: "bob"},
		{ref: "registry-1.docker.io/x/y", user: "bob"},
		{ref: "REG.example:8443/a/b", token: "tok-" + testPassword},
		{ref: "127.0.0.1:5001/team/app", anonymus: true},
		{ref: "reg.example/a/b", anonymus: true},
	} {
		ref, err := name.ParseReference(tc.ref)
		if err != nil {
			t.Fatal(err)
		}
		a, err := kc.Resolve(ref.Context())
		if err != nil {
			t.Fatal(err)
		}
		if tc.anonymus {
			if a != authn.Anonymous {
				t.Errorf("%s: want anonymous", tc.ref)
			}
			continue
		}
		ac, err := a.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		if ac.Username != tc.user || ac.IdentityToken != tc.token {
			t.Errorf("%s: got user %q token-set %v", tc.ref, ac.Username, ac.IdentityToken != "")
		}
		if tc.user != "" && ac.Password != testPassword {
			t.Errorf("%s: wrong password", tc.ref)
		}
	}
}

func TestParseLegacyDockercfg(t *testing.T) {
	raw, _ := json.Marshal(map[string]any{"127.0.0.1:5000": map[string]string{"username": "u", "password": testPassword}})
	cfg, err := Parse(&corev1.Secret{Type: corev1.SecretTypeDockercfg, Data: map[string][]byte{corev1.DockerConfigKey: raw}})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if fmt.Sprint(cfg.Registries()) != "[127.0.0.1:5000]" {
		t.Fatalf("registries %v", cfg.Registries())
	}
}

func TestParseErrors(t *testing.T) {
	good := dockerSecret(t, map[string]any{"r:1": map[string]string{"username": "u", "password": testPassword}})
	for _, tc := range []struct {
		name   string
		secret *corev1.Secret
		want   string
	}{
		{"nil", nil, "nil"},
		{"wrong type", &corev1.Secret{Type: corev1.SecretTypeOpaque, Data: good.Data}, "has type"},
		{"missing key", &corev1.Secret{Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{"other": []byte(testPassword)}}, "lacks key .dockerconfigjson"},
		{"malformed", &corev1.Secret{Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths": {"r": "` + testPassword)}}, "malformed"},
		{"no entries", &corev1.Secret{Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)}}, "no registry entries"},
		{"no creds", dockerSecret(t, map[string]any{"r:1": map[string]string{"username": "u"}}), "no usable credentials"},
		{"bad base64", dockerSecret(t, map[string]any{"r:1": map[string]string{"auth": "!!" + testPassword}}), "not valid base64"},
		{"auth without colon", dockerSecret(t, map[string]any{"r:1": map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(testPassword))}}), "user:password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.secret)
			if err == nil {
				t.Fatal("want error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if strings.Contains(err.Error(), testPassword) || strings.Contains(err.Error(), base64.StdEncoding.EncodeToString([]byte(testPassword))[:12]) {
				t.Errorf("error leaks the secret: %q", err)
			}
		})
	}
}

func TestConfigNeverPrintsSecrets(t *testing.T) {
	cfg, err := Parse(dockerSecret(t, map[string]any{"r:1": map[string]string{"username": "u", "password": testPassword, "identitytoken": "idtok-" + testPassword}}))
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString([]byte("u:" + testPassword))
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%T %v"} {
		var out string
		if verb == "%T %v" {
			out = fmt.Sprintf(verb, cfg, *cfg)
		} else {
			out = fmt.Sprintf(verb, cfg) + fmt.Sprintf(verb, *cfg)
		}
		if strings.Contains(out, testPassword) || strings.Contains(out, b64) {
			t.Errorf("%s prints a secret: %s", verb, out)
		}
	}
	if js, _ := json.Marshal(cfg); strings.Contains(string(js), testPassword) {
		t.Errorf("json leaks: %s", js)
	}
	red := cfg.Redact("x " + testPassword + " y " + b64 + " z idtok-" + testPassword)
	if strings.Contains(red, testPassword) || strings.Contains(red, b64) {
		t.Errorf("Redact left a secret: %s", red)
	}
}

func TestWriteAuthFileRoundTrip(t *testing.T) {
	cfg, err := Parse(dockerSecret(t, map[string]any{
		"https://127.0.0.1:5000/": map[string]string{"username": "alice", "password": testPassword},
		"docker.io":               map[string]string{"username": "bob", "password": testPassword},
	}))
	if err != nil {
		t.Fatal(err)
	}
	path, cleanup, err := cfg.WriteAuthFile(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("auth file mode %v, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("auth dir mode %v, want 0700", di.Mode().Perm())
	}
	var doc struct {
		Auths map[string]struct{ Auth string } `json:"auths"`
	}
	raw, _ := os.ReadFile(path)
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Auths["127.0.0.1:5000"].Auth != base64.StdEncoding.EncodeToString([]byte("alice:"+testPassword)) {
		t.Errorf("auth file lacks 127.0.0.1:5000 entry in auth form: %v", doc.Auths["127.0.0.1:5000"])
	}
	if doc.Auths["docker.io"].Auth == "" {
		t.Errorf("auth file lacks docker.io key for containers/image")
	}
	back, err := LoadAuthFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(back.Registries()) != "[127.0.0.1:5000 index.docker.io]" {
		t.Errorf("round trip registries %v", back.Registries())
	}
	cleanup()
	if _, err := os.Stat(filepath.Dir(path)); !os.IsNotExist(err) {
		t.Errorf("cleanup left %s: %v", filepath.Dir(path), err)
	}
}
