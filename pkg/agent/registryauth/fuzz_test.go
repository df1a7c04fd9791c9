package registryauth

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// FuzzParse feeds the registry Secret parser arbitrary Secret data: it
// never panics, its errors never echo the data (it may hold passwords),
// a parsed Config never prints a credential, and what it writes as an auth
// file reads back to the same registries.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"auths":{"r.example:5000":{"auth":"dXNlcjpzM2NyZXQtcGFzc3dvcmQ="}}}`), false, "s3cret-password")
	f.Add([]byte(`{"auths":{"https://index.docker.io/v1/":{"username":"u","password":"hunter2-hunter2"}}}`), false, "hunter2-hunter2")
	f.Add([]byte(`{"r":{"identitytoken":"tok-tok-tok-tok"}}`), true, "tok-tok-tok-tok")
	f.Add([]byte(`{"auths":{"":{}}}`), false, "")
	f.Add([]byte(`not json at all: secret-value-123`), false, "secret-value-123")
	f.Fuzz(func(t *testing.T, data []byte, legacy bool, secret string) {
		s := &corev1.Secret{Type: corev1.SecretTypeDockerConfigJson, Data: map[string][]byte{corev1.DockerConfigJsonKey: data}}
		if legacy {
			s.Type, s.Data = corev1.SecretTypeDockercfg, map[string][]byte{corev1.DockerConfigKey: data}
		}
		s.Namespace, s.Name = "stateshift-system", "registry"
		cfg, err := Parse(s)
		// A long enough secret that appears in the data must not reach an
		// error or the printed Config.
		leaks := func(text string) bool {
			return len(secret) >= 8 && strings.Contains(string(data), secret) && strings.Contains(text, secret) &&
				!strings.Contains(s.Namespace+"/"+s.Name+" "+corev1.DockerConfigJsonKey+" "+corev1.DockerConfigKey, secret)
		}
		if err != nil {
			// Malformed JSON is reported in fixed words (a valid document's
			// errors may quote registry hosts, which are not secret).
			if !json.Valid(data) && leaks(err.Error()) {
				t.Fatalf("error %q echoes the secret %q", err, secret)
			}
			return
		}
		for _, text := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", *cfg)} {
			for _, cr := range cfg.creds {
				for _, sec := range cr.secrets() {
					if len(sec) >= 8 && strings.Contains(text, sec) && !strings.Contains(strings.Join(cfg.Registries(), " "), sec) {
						t.Fatalf("printing the Config shows a credential: %s", text)
					}
				}
			}
		}
		path, cleanup, err := cfg.WriteAuthFile(t.TempDir())
		if err != nil {
			t.Fatalf("write auth file: %v", err)
		}
		defer cleanup()
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 || filepath.Base(path) != "auth.json" {
			t.Fatalf("auth file %s: %v %v", path, fi, err)
		}
		back, err := LoadAuthFile(path)
		if err != nil {
			t.Fatalf("read back the auth file: %v", err)
		}
		for _, h := range cfg.Registries() {
			if _, ok := back.creds[h]; !ok {
				t.Fatalf("registry %q lost in the auth file (has %v)", h, back.Registries())
			}
		}
	})
}
