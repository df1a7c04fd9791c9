package registry

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

func TestStartStopAndAuth(t *testing.T) {
	r := Start(t, WithAuth("alice", "s3cret-pw"))
	resp, err := http.Get("http://" + r.Host + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("anonymous /v2/: got %d, want 401", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+r.Host+"/v2/", nil)
	req.SetBasicAuth("alice", "s3cret-pw")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("authenticated /v2/: got %d, want 200", resp.StatusCode)
	}
	r.Stop()
	if _, err := http.Get("http://" + r.Host + "/v2/"); err == nil {
		t.Fatal("registry still answers after Stop")
	}
	r.Start()
	if _, err := http.Get("http://" + r.Host + "/v2/"); err != nil {
		t.Fatalf("registry does not answer after restart: %v", err)
	}
}

func TestLaunchWithoutTB(t *testing.T) {
	Binary(t) // Launch does not install it
	r, err := Launch()
	if err != nil {
		t.Fatal(err)
	}
	dir := r.dir
	resp, err := http.Get("http://" + r.Host + "/v2/")
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		r.Close()
		t.Fatalf("anonymous /v2/ without auth: got %d, want 200", resp.StatusCode)
	}
	r.Stop()
	if err := r.Resume(); err != nil {
		r.Close()
		t.Fatalf("Resume: %v", err)
	}
	r.Close()
	if _, err := http.Get("http://" + r.Host + "/v2/"); err == nil {
		t.Fatal("registry still answers after Close")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("Close left the folder Launch made: %v", err)
	}

	kept := filepath.Join(t.TempDir(), "registry")
	r, err = Launch(WithDir(kept))
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := os.Stat(filepath.Join(kept, "config.yml")); err != nil {
		t.Fatalf("Close removed a folder given WithDir: %v", err)
	}
}
