package registry

import (
	"net/http"
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
