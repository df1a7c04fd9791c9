package interpreter

import (
	"encoding/json"
	"reflect"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	webhook "github.com/karmada-io/karmada/pkg/webhook/interpreter"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestPatchResponse: applying the patch to the first document gives the
// second, for the shapes Karmada's objects take, and the response has the
// shape of Karmada's PatchResponseFromRaw.
func TestPatchResponse(t *testing.T) {
	docs := []string{
		`{}`,
		`{"a":1}`,
		`{"a":2,"b":{"c":[1,2,3],"d":"x"}}`,
		`{"a":2,"b":{"c":[1,2],"e":null}}`,
		`{"b":{"c":"now a string"},"metadata":{"annotations":{"stateshift.io/x":"1","a~b":"2"}}}`,
		`{"b":[],"metadata":{"annotations":{"stateshift.io/x":"2"}},"n":null}`,
		`{"b":{"deep":{"deeper":{"k":true}}},"n":{"k":1}}`,
	}
	for i, from := range docs {
		for j, to := range docs {
			a, b := &unstructured.Unstructured{}, &unstructured.Unstructured{}
			if err := json.Unmarshal([]byte(from), &a.Object); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(to), &b.Object); err != nil {
				t.Fatal(err)
			}
			resp := patchResponse(webhook.Request{}, a, b)
			if !resp.Successful {
				t.Fatalf("%d->%d: %+v", i, j, resp.Status)
			}
			if i == j {
				if resp.Patch != nil || resp.PatchType != nil {
					t.Fatalf("%d->%d: patch %s for equal documents", i, j, resp.Patch)
				}
				continue
			}
			p, err := jsonpatch.DecodePatch(resp.Patch)
			if err != nil {
				t.Fatalf("%d->%d: %s: %v", i, j, resp.Patch, err)
			}
			out, err := p.Apply([]byte(from))
			if err != nil {
				t.Fatalf("%d->%d: apply %s: %v", i, j, resp.Patch, err)
			}
			var got, want interface{}
			_ = json.Unmarshal(out, &got)
			_ = json.Unmarshal([]byte(to), &want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%d->%d: patch %s gives %s, want %s", i, j, resp.Patch, out, to)
			}
		}
	}
}
