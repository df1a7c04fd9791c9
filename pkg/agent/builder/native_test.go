package builder

import (
	"context"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/checkpointimage"
	"github.com/stateshift/stateshift/test/registry"
)

func TestNativeUncompressedLayerIsTheArchive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg := registry.Start(t)
	archive := writeArchive(t, t.TempDir(), 3<<20)
	repo := reg.Host + "/team/app"

	res, err := NewNative().Build(ctx, Request{ArchivePath: archive, Repository: repo, Tag: "v1", Annotations: testAnnotations(), Insecure: true})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if res.Reference != repo+"@"+res.Digest {
		t.Errorf("reference %s, want %s@%s", res.Reference, repo, res.Digest)
	}
	if _, err := checkpointimage.Verify(ctx, repo, res.Digest, "web", nil, name.Insecure); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	m, layer := pushedLayer(t, ctx, res, nil)
	if m.Layers[0].MediaType != types.OCIUncompressedLayer {
		t.Errorf("layer media type %s", m.Layers[0].MediaType)
	}
	if m.Config.MediaType != types.OCIConfigJSON {
		t.Errorf("config media type %s", m.Config.MediaType)
	}
	for k, v := range testAnnotations() {
		if m.Annotations[k] != v {
			t.Errorf("annotation %s=%q, want %q", k, m.Annotations[k], v)
		}
	}
	want := fileSHA(t, archive)
	if m.Layers[0].Digest.Hex != want {
		t.Errorf("layer digest %s, archive sha256 %s", m.Layers[0].Digest.Hex, want)
	}
	rc, err := layer.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if got := readerSHA(t, rc); got != want {
		t.Errorf("layer bytes sha256 %s, archive %s", got, want)
	}
	if res.LayerBytes != m.Layers[0].Size {
		t.Errorf("LayerBytes %d, manifest says %d", res.LayerBytes, m.Layers[0].Size)
	}
}

func TestNativeGzipLayerGunzipsToTheArchive(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg := registry.Start(t)
	archive := writeArchive(t, t.TempDir(), 2<<20)
	repo := reg.Host + "/team/app"

	res, err := NewNative().Build(ctx, Request{ArchivePath: archive, Repository: repo, Tag: "gz", Annotations: testAnnotations(), Insecure: true, Compression: v1alpha1.LayerCompressionGzip})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if _, err := checkpointimage.Verify(ctx, repo, res.Digest, "web", nil, name.Insecure); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	m, layer := pushedLayer(t, ctx, res, nil)
	if m.Layers[0].MediaType != types.OCILayer {
		t.Errorf("layer media type %s, want %s", m.Layers[0].MediaType, types.OCILayer)
	}
	rc, err := layer.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := gunzipSHA(t, rc), fileSHA(t, archive); got != want {
		t.Errorf("gunzipped layer sha256 %s, archive %s", got, want)
	}
}

func TestNativeAuth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reg := registry.Start(t, registry.WithAuth("alice", testPassword))
	archive := writeArchive(t, t.TempDir(), 1<<20)
	repo := reg.Host + "/team/app"

	good, cfg := authFileFor(t, reg.Host, "alice", testPassword)
	res, err := NewNative().Build(ctx, Request{ArchivePath: archive, Repository: repo, Tag: "v1", Annotations: testAnnotations(), Insecure: true, AuthFile: good})
	if err != nil {
		t.Fatalf("Build with the Secret's credentials: %v", err)
	}
	if _, err := checkpointimage.Verify(ctx, repo, res.Digest, "web", cfg.Keychain(), name.Insecure); err != nil {
		t.Fatalf("Verify: %v", err)
	}

	bad, _ := authFileFor(t, reg.Host, "alice", "wrong-"+testPassword)
	_, err = NewNative().Build(ctx, Request{ArchivePath: archive, Repository: repo, Tag: "v2", Annotations: testAnnotations(), Insecure: true, AuthFile: bad})
	if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), "unauthorized") {
		t.Fatalf("wrong password: want ErrUnauthorized, got %v", err)
	}
	if strings.Contains(err.Error(), testPassword) {
		t.Fatalf("error leaks the password: %v", err)
	}

	_, err = NewNative().Build(ctx, Request{ArchivePath: archive, Repository: repo, Tag: "v3", Annotations: testAnnotations(), Insecure: true})
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("anonymous push to an auth registry: want ErrUnauthorized, got %v", err)
	}
}

func TestNativeRegistryDown(t *testing.T) {
	reg := registry.Start(t)
	reg.Stop()
	archive := writeArchive(t, t.TempDir(), 1<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	_, err := NewNative().Build(ctx, Request{ArchivePath: archive, Repository: reg.Host + "/team/app", Tag: "v1", Annotations: testAnnotations(), Insecure: true})
	if !errors.Is(err, ErrRegistryUnreachable) {
		t.Fatalf("want ErrRegistryUnreachable, got %v", err)
	}
	if d := time.Since(start); d > 25*time.Second {
		t.Fatalf("took %v, the context allowed 20s", d)
	}
}

func TestRequestValidation(t *testing.T) {
	archive := writeArchive(t, t.TempDir(), 1024)
	ok := Request{ArchivePath: archive, Repository: "127.0.0.1:1/a", Tag: "t", Annotations: testAnnotations()}
	if err := ok.validate(); err != nil {
		t.Fatalf("valid request rejected: %v", err)
	}
	noCRIO := testAnnotations()
	delete(noCRIO, checkpointimage.AnnotationCRIO)
	for name, mut := range map[string]func(*Request){
		"no archive":      func(r *Request) { r.ArchivePath = "" },
		"missing archive": func(r *Request) { r.ArchivePath += ".gone" },
		"dir archive":     func(r *Request) { r.ArchivePath = t.TempDir() },
		"no repository":   func(r *Request) { r.Repository = "" },
		"no tag":          func(r *Request) { r.Tag = "" },
		"bad repository":  func(r *Request) { r.Repository = "Bad Repo//x" },
		"bad tag":         func(r *Request) { r.Tag = "a:b" },
		"no annotation":   func(r *Request) { r.Annotations = noCRIO },
		"bad key":         func(r *Request) { r.Annotations = map[string]string{checkpointimage.AnnotationCRIO: "c", "a=b": "x"} },
		"bad compression": func(r *Request) { r.Compression = "zstd" },
	} {
		r := ok
		mut(&r)
		for _, b := range []ImageBuilder{NewNative(), &Buildah{Root: "/nonexistent", RunRoot: "/nonexistent"}} {
			_, err := b.Build(context.Background(), r)
			if !errors.Is(err, ErrInvalidRequest) {
				t.Errorf("%s/%s: want ErrInvalidRequest, got %v", b.Name(), name, err)
			}
		}
	}
	if _, err := (&Buildah{}).Build(context.Background(), ok); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("buildah without storage roots: want ErrInvalidRequest, got %v", err)
	}
}

// TestNativePushRequests pins how many requests a push and its read-back
// cost the registry: for a scheduled round of many small checkpoints the
// request count is the registry's CPU (distribution 2.8 builds its router
// for every request). One handshake, the layer (POST, PATCH, PUT), the
// config (POST, PUT), the manifest (PUT), the read-back (GET): 8, where
// remote.Write with a handshake of its own and a fresh one for the
// read-back made 14.
func TestNativePushRequests(t *testing.T) {
	for _, auth := range []bool{false, true} {
		t.Run(map[bool]string{false: "anonymous", true: "htpasswd"}[auth], func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			var opts []registry.Option
			if auth {
				opts = append(opts, registry.WithAuth("alice", testPassword))
			}
			reg := registry.Start(t, opts...)
			counted := countingProxy(t, reg.Host)
			archive := writeArchive(t, t.TempDir(), 64<<10)
			repo := counted.host + "/team/app"
			var authFile string
			if auth {
				authFile, _ = authFileFor(t, counted.host, "alice", testPassword)
			}

			res, err := NewNative().Build(ctx, Request{ArchivePath: archive, Repository: repo, Tag: "v1", Annotations: testAnnotations(), Insecure: true, AuthFile: authFile})
			if err != nil {
				t.Fatalf("Build: %v", err)
			}
			if res.Transport == nil {
				t.Fatal("Result.Transport is nil: the read-back would need its own handshake")
			}
			if _, err := checkpointimage.VerifyOver(ctx, res.Transport, repo, res.Digest, "web", name.Insecure); err != nil {
				t.Fatalf("VerifyOver: %v", err)
			}
			want := map[string]int{"GET /v2/": 1, "POST blobs/uploads": 2, "PATCH blobs/uploads": 1, "PUT blobs/uploads": 2, "PUT manifests": 1, "GET manifests": 1}
			if got := counted.counts(); !reflect.DeepEqual(got, want) {
				t.Errorf("requests %v, want %v", got, want)
			}
		})
	}
}

type requestCounter struct {
	host string
	mu   sync.Mutex
	seen map[string]int
}

func (c *requestCounter) counts() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.seen)
}

// countingProxy forwards to the registry at host on a loopback port of its
// own and counts requests by method and kind of path, whatever the answer
// (with htpasswd the handshake's GET /v2/ is answered 401: the challenge).
func countingProxy(t testing.TB, host string) *requestCounter {
	c := &requestCounter{seen: map[string]int{}}
	target := &url.URL{Scheme: "http", Host: host}
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		kind := resp.Request.URL.Path
		for _, k := range []string{"blobs/uploads", "manifests", "blobs"} {
			if strings.Contains(kind, "/"+k+"/") {
				kind = k
				break
			}
		}
		c.mu.Lock()
		c.seen[resp.Request.Method+" "+kind]++
		c.mu.Unlock()
		return nil
	}
	srv := httptest.NewServer(proxy)
	t.Cleanup(srv.Close)
	c.host = strings.TrimPrefix(srv.URL, "http://")
	return c
}
