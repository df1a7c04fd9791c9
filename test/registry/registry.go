// Package registry runs a real OCI registry (Debian's docker-registry,
// distribution 2.8) on 127.0.0.1 for tests and benchmarks: its own config,
// its own storage folder, optionally htpasswd authentication, and Stop/Start
// to play a registry outage.
//
// A test calls Start(t), which installs docker-registry when it is missing
// and stops the registry when the test ends. A program without a testing.TB
// (a benchmark) calls Launch and Close.
package registry

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Registry is one running docker-registry.
type Registry struct {
	// Host is 127.0.0.1:<port>, the registry part of image references.
	Host string
	// Username and Password are set when started WithAuth.
	Username, Password string

	dir    string
	ownDir bool // Launch made dir, so Close removes it
	bin    string
	cmd    *exec.Cmd
	log    *os.File
	t      testing.TB // set by Start(t): the Start method fails the test
}

// Option changes how the registry starts.
type Option func(*Registry)

// WithAuth turns on htpasswd authentication with the given user.
func WithAuth(user, password string) Option {
	return func(r *Registry) { r.Username, r.Password = user, password }
}

// WithDir keeps the registry's config, storage and log in dir (made when
// missing, left in place by Close) instead of a new temporary folder.
func WithDir(dir string) Option {
	return func(r *Registry) { r.dir = dir }
}

// Binary returns the docker-registry program, installing the Debian package
// when it is missing (a test that needs a tool installs it).
func Binary(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("docker-registry"); err == nil {
		return p
	}
	cmd := exec.Command("bash", filepath.Join(repoRoot(), "hack", "install-debs.sh"))
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

// repoRoot is the repository's top folder, found like testenv.Root: this
// package does not import testenv, which would bring controller-runtime (and
// its -kubeconfig flag) into the benchmarks that use Launch.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Start runs a registry on a free loopback port until the test ends,
// installing docker-registry first when it is missing.
func Start(t testing.TB, opts ...Option) *Registry {
	t.Helper()
	Binary(t)
	r, err := Launch(append([]Option{WithDir(t.TempDir())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	r.t = t
	t.Cleanup(r.Close)
	return r
}

// Launch runs a registry on a free loopback port without a testing.TB; the
// caller stops it with Close. docker-registry must be installed
// (hack/install-debs.sh; Launch does not install it).
func Launch(opts ...Option) (_ *Registry, err error) {
	r := &Registry{}
	for _, o := range opts {
		o(r)
	}
	if r.bin, err = exec.LookPath("docker-registry"); err != nil {
		return nil, fmt.Errorf("docker-registry not installed (hack/install-debs.sh): %w", err)
	}
	if r.dir == "" {
		if r.dir, err = os.MkdirTemp("", "stateshift-registry-"); err != nil {
			return nil, err
		}
		r.ownDir = true
	} else if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("free port: %w", err)
	}
	r.Host = l.Addr().String()
	_ = l.Close()

	auth := ""
	if r.Username != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(r.Password), bcrypt.MinCost)
		if err != nil {
			return nil, fmt.Errorf("htpasswd: %w", err)
		}
		htpasswd := filepath.Join(r.dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(r.Username+":"+string(hash)+"\n"), 0o600); err != nil {
			return nil, err
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
		return nil, err
	}
	if err := r.Resume(); err != nil {
		return nil, err
	}
	return r, nil
}

// Start (re)starts a stopped registry on the same port and storage. It
// fails the test when the registry does not come up; a registry from Launch
// has no test to fail and panics instead, so programs call Resume.
func (r *Registry) Start() {
	if r.t != nil {
		r.t.Helper()
	}
	if err := r.Resume(); err != nil {
		if r.t == nil {
			panic(err)
		}
		r.t.Fatal(err)
	}
}

// Resume (re)starts a stopped registry on the same port and storage and
// waits until it answers; it does nothing when the registry runs.
func (r *Registry) Resume() error {
	if r.cmd != nil {
		return nil
	}
	logf, err := os.OpenFile(filepath.Join(r.dir, "registry.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(r.bin, "serve", filepath.Join(r.dir, "config.yml"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start docker-registry: %w", err)
	}
	r.cmd, r.log = cmd, logf
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + r.Host + "/v2/")
		if err == nil {
			_ = resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	r.Stop()
	return errors.New("registry on " + r.Host + " did not answer in 15s; log: " + r.Log())
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

// Close stops the registry for good and removes its folder when Launch
// made it (not one given WithDir, nor a test's temporary folder).
func (r *Registry) Close() {
	r.Stop()
	if r.ownDir {
		_ = os.RemoveAll(r.dir)
	}
}

// Log returns what the registry printed.
func (r *Registry) Log() string {
	b, _ := os.ReadFile(filepath.Join(r.dir, "registry.log"))
	return string(b)
}

// DataDir is the registry's storage, for tests that inspect blobs.
func (r *Registry) DataDir() string { return filepath.Join(r.dir, "data") }
