package interpreter

import (
	"encoding/json"
	"reflect"
	"sort"
	"strings"

	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
	webhook "github.com/karmada-io/karmada/pkg/webhook/interpreter"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// patchResponse answers with the RFC 6902 patch from original to current,
// in the response shape of Karmada's webhook.PatchResponseFromRaw. It
// diffs the decoded objects directly: PatchResponseFromRaw marshals the
// result and unmarshals both documents again, which was half the cost of
// a ReviseReplica.
func patchResponse(req webhook.Request, original, current *unstructured.Unstructured) webhook.Response {
	ops := diff(nil, "", original.Object, current.Object)
	if len(ops) == 0 {
		return webhook.Succeeded("")
	}
	raw, err := json.Marshal(ops)
	if err != nil {
		return failed(req, err)
	}
	patchType := configv1alpha1.PatchTypeJSONPatch
	return webhook.Response{ResourceInterpreterResponse: configv1alpha1.ResourceInterpreterResponse{
		Successful: true,
		Patch:      raw,
		PatchType:  &patchType,
	}}
}

type operation struct {
	Op    string      `json:"op"`
	Path  string      `json:"path"`
	Value interface{} `json:"value,omitempty"`
}

// diff appends the operations turning a into b at path. Objects are
// compared key by key; anything else (lists included) is replaced whole
// when it differs, which keeps every operation valid whatever the list
// lengths.
func diff(ops []operation, path string, a, b map[string]interface{}) []operation {
	for _, k := range sortedKeys(a) {
		if _, ok := b[k]; !ok {
			ops = append(ops, operation{Op: "remove", Path: path + "/" + escape(k)})
		}
	}
	for _, k := range sortedKeys(b) {
		p := path + "/" + escape(k)
		bv := b[k]
		av, ok := a[k]
		if !ok {
			ops = append(ops, add(p, bv))
			continue
		}
		am, aIsMap := av.(map[string]interface{})
		bm, bIsMap := bv.(map[string]interface{})
		switch {
		case aIsMap && bIsMap:
			ops = diff(ops, p, am, bm)
		case !reflect.DeepEqual(av, bv):
			ops = append(ops, replace(p, bv))
		}
	}
	return ops
}

// add and replace carry a JSON null explicitly (omitempty would drop it).
func add(path string, v interface{}) operation {
	return operation{Op: "add", Path: path, Value: nullable(v)}
}

func replace(path string, v interface{}) operation {
	return operation{Op: "replace", Path: path, Value: nullable(v)}
}

func nullable(v interface{}) interface{} {
	if v == nil {
		return json.RawMessage("null")
	}
	return v
}

func sortedKeys(m map[string]interface{}) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// escape encodes a JSON-pointer reference token (RFC 6901).
func escape(token string) string {
	if !strings.ContainsAny(token, "~/") {
		return token
	}
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(token)
}
