package restore

import (
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Operation is one RFC 6902 JSON-patch operation.
type Operation struct {
	Op    string      `json:"op"`
	Path  string      `json:"path"`
	Value interface{} `json:"value,omitempty"`
}

// Patches expresses Rewrite(obj, p) as JSON-patch operations against obj,
// the form a Karmada OverridePolicy plaintext overrider carries. The
// operations address containers by position and add annotation keys one
// by one when the map exists (so other annotations survive): they are valid
// for obj as it is, and must be rebuilt when the workload changes.
func Patches(obj *unstructured.Unstructured, p Plan) ([]Operation, error) {
	rw, err := plan(obj, p)
	if err != nil {
		return nil, err
	}
	tp := "/" + strings.Join(rw.templatePath, "/")
	var ops []Operation
	for _, c := range rw.sortedIndex() {
		base := tp + "/spec/containers/" + strconv.Itoa(rw.index[c])
		ops = append(ops,
			Operation{Op: "replace", Path: base + "/image", Value: p.Containers[c]},
			Operation{Op: "add", Path: base + "/imagePullPolicy", Value: PullPolicy})
	}

	workload := map[string]string{
		AnnotationRestoredFrom:   rw.restoredFrom,
		AnnotationOriginalImages: rw.originalImages,
	}
	ops = append(ops, annotationOps(obj.Object, []string{"metadata"}, workload)...)

	template := map[string]string{
		AnnotationRestoredFrom:   rw.restoredFrom,
		AnnotationOriginalImages: rw.originalImages,
	}
	var stale []string
	for _, k := range sortedKeys(rw.optional()) {
		if v := rw.optional()[k]; v != "" {
			template[k] = v
		} else {
			stale = append(stale, k)
		}
	}
	ops = append(ops, annotationOps(obj.Object, append(append([]string{}, rw.templatePath...), "metadata"), template, stale...)...)
	ops = append(ops, rw.pullSecret.ops(tp)...)
	if rw.strategy != nil {
		// "add" replaces a member that exists (RFC 6902 4.1); spec exists.
		ops = append(ops, Operation{Op: "add", Path: "/spec/updateStrategy", Value: rw.strategy})
	}
	return ops, nil
}

// annotationOps sets keys in the annotations of the metadata at path,
// creating the metadata or the map when missing, and removes the keys in
// remove that a previous rewrite left.
func annotationOps(obj map[string]interface{}, path []string, set map[string]string, remove ...string) []Operation {
	pointer := "/" + strings.Join(path, "/")
	meta, found, _ := unstructured.NestedFieldNoCopy(obj, path...)
	if !found || meta == nil {
		return []Operation{{Op: "add", Path: pointer, Value: map[string]interface{}{"annotations": set}}}
	}
	existing, found, _ := unstructured.NestedFieldNoCopy(obj, append(path, "annotations")...)
	current, isMap := existing.(map[string]interface{})
	if !found || existing == nil || !isMap {
		return []Operation{{Op: "add", Path: pointer + "/annotations", Value: set}}
	}
	var ops []Operation
	for _, k := range sortedKeys(set) {
		ops = append(ops, Operation{Op: "add", Path: pointer + "/annotations/" + escape(k), Value: set[k]})
	}
	for _, k := range remove {
		if _, stale := current[k]; stale {
			ops = append(ops, Operation{Op: "remove", Path: pointer + "/annotations/" + escape(k)})
		}
	}
	return ops
}

// escape encodes a JSON-pointer reference token (RFC 6901).
func escape(token string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(token)
}

// String shows an operation for logs and errors.
func (o Operation) String() string { return fmt.Sprintf("%s %s", o.Op, o.Path) }
