// Package registry runs a real OCI registry (Debian's docker-registry,
// distribution 2.8) on 127.0.0.1 for tests: its own config, its own storage
// folder, optionally htpasswd authentication, and Stop/Start to play a
// registry outage.
package registry

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/stateshift/stateshift/test/testenv"
)

// Registry is one running docker-registry.
type Registry struct {
	// Host is 127.0.0.1:<port>, the registry part of image references.
	Host string
	// Username and Password are set when started WithAuth.
	Username, Password string

	dir string
	cmd *exec.Cmd
	log *os.File
	t   testing.TB
}

// Option changes how the registry starts.
type Option func(*Registry)

// WithAuth turns on htpasswd authentication with the given user.
func WithAuth(user, password string) Option {
	return func(r *Registry) { r.Username, r.Password = user, password }
}

// Binary returns the docker-registry program, installing the Debian package
// when it is missing (a test that needs a tool installs it).
func Binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("docker-registry"); err == nil {
		return p
	}
	cmd := exec.Command("bash", filepath.Join(testenv.Root(), "hack", "install-debs.sh"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("install docker-registry: %v", err)
	}
	p, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatalf("docker-registry still missing after hack/install-debs.sh: %v", err)
	}
	return p
}

// Start runs a registry on a free loopback port until the test ends.
func Start(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	r := &Registry{dir: t.TempDir(), t: t}
	for _, o := range opts {
		o(r)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	r.Host = l.Addr().String()
	_ = l.Close()

	auth := ""
	if r.Username != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(r.Password), bcrypt.MinCost)
		if err != nil {
			t.Fatalf("htpasswd: %v", err)
		}
		htpasswd := filepath.Join(r.dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(r.Username+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: stateshift-test\n    path: %s\n", htpasswd)
	}
	config := fmt.Sprintf(`version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
  secret: stateshift-test
%s`, filepath.Join(r.dir, "data"), r.Host, auth)
	if err := os.WriteFile(filepath.Join(r.dir, "config.yml"), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	r.Start()
	t.Cleanup(r.Stop)
	return r
}

// Start (re)starts a stopped registry on the same port and storage.
func (r *Registry) Start() {
	r.t.Helper()
	if r.cmd != nil {
		return
	}
	logf, err := os.OpenFile(filepath.Join(r.dir, "registry.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		r.t.Fatal(err)
	}
	cmd := exec.Command(Binary(r.t), "serve", filepath.Join(r.dir, "config.yml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		r.t.Fatalf("start docker-registry: %v", err)
	}
	r.cmd, r.log = cmd, logf
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + r.Host + "/v2/")
		if err == nil {
			_ = resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.t.Fatalf("registry on %s did not answer in 15s; log: %s", r.Host, r.Log())
}

// Stop kills the registry; its storage stays for a later Start.
func (r *Registry) Stop() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	_ = r.log.Close()
	r.cmd = nil
}

// Log returns what the registry printed.
func (r *Registry) Log() string {
	b, _ := os.ReadFile(filepath.Join(r.dir, "registry.log"))
	return string(b)
}

// DataDir is the registry's storage, for tests that inspect blobs.
func (r *Registry) DataDir() string { return filepath.Join(r.dir, "data") }
