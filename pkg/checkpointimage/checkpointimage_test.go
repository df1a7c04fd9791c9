package checkpointimage

import (
	"encoding/json"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

func TestAnnotationsCarryBothKeys(t *testing.T) {
	a := Annotations(Source{Container: "db", Pod: "db-0", Namespace: "shop", RootfsImage: "redis:7", RootfsImageRef: "abc"})
	want := map[string]string{
		"io.kubernetes.cri-o.annotations.checkpoint.name": "db",
		"org.criu.checkpoint.container.name":              "db",
		"org.criu.checkpoint.rootfsImageName":             "redis:7",
		"org.criu.checkpoint.rootfsImageID":               "abc",
		"org.criu.checkpoint.pod.name":                    "db-0",
		"org.criu.checkpoint.pod.namespace":               "shop",
	}
	if len(a) != len(want) {
		t.Fatalf("annotations %v", a)
	}
	for k, v := range want {
		if a[k] != v {
			t.Errorf("%s = %q, want %q", k, a[k], v)
		}
	}
	// Unknown facts are left out rather than written empty.
	if a := Annotations(Source{Container: "db"}); len(a) != 2 {
		t.Errorf("minimal annotations %v", a)
	}
}

func manifest(t *testing.T, annotations map[string]string, layers int) []byte {
	t.Helper()
	h := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Annotations: annotations,
		Config: v1.Descriptor{MediaType: types.OCIConfigJSON, Digest: h}}
	for range layers {
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: types.OCILayer, Digest: h})
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCheckManifest(t *testing.T) {
	good := Annotations(Source{Container: "db"})
	if _, err := CheckManifest(types.OCIManifestSchema1, manifest(t, good, 1), "db"); err != nil {
		t.Fatalf("a valid checkpoint manifest: %v", err)
	}
	if _, err := CheckManifest(types.OCIManifestSchema1, manifest(t, good, 1), ""); err != nil {
		t.Fatalf("any container: %v", err)
	}
	cases := map[string]struct {
		mt        types.MediaType
		raw       []byte
		container string
		says      string
	}{
		"docker format drops annotations": {types.DockerManifestSchema2, manifest(t, good, 1), "db", "media type"},
		"an index":                        {types.OCIImageIndex, manifest(t, good, 1), "db", "media type"},
		"no CRI-O annotation":             {types.OCIManifestSchema1, manifest(t, map[string]string{AnnotationCRIU: "db"}, 1), "db", "not a checkpoint image"},
		"keys disagree":                   {types.OCIManifestSchema1, manifest(t, map[string]string{AnnotationCRIO: "db", AnnotationCRIU: "web"}, 1), "db", "disagree"},
		"other container":                 {types.OCIManifestSchema1, manifest(t, good, 1), "web", `expected "web"`},
		"two layers":                      {types.OCIManifestSchema1, manifest(t, good, 2), "db", "2 layers"},
		"not json":                        {types.OCIManifestSchema1, []byte("{"), "db", "parse manifest"},
	}
	for name, tc := range cases {
		if _, err := CheckManifest(tc.mt, tc.raw, tc.container); err == nil || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("%s: got %v, want an error saying %q", name, err, tc.says)
		}
	}
}
