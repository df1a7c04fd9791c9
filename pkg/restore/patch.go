package restore

import (
	"fmt"
	"sort"
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
// operations add annotation keys one by one when the map exists (so other
// annotations survive) and address pull Secrets by position: they are
// valid for obj as it is, and must be rebuilt when the workload changes.
func Patches(obj *unstructured.Unstructured, p Plan) ([]Operation, error) {
	w, err := decodeWorkload(obj)
	if err != nil {
		return nil, fmt.Errorf("restore: %w", err)
	}
	rw, err := plan(w, p)
	if err != nil {
		return nil, err
	}
	tp := "/" + strings.Join(w.kind.templatePath, "/")
	var ops []Operation
	for _, c := range sortedKeys(rw.index) {
		i := rw.index[c]
		if w.template().Spec.Containers[i].Image != rw.originals[c] {
			// A template an older version rewrote runs the checkpoint
			// image: back to the original. "add" replaces a member that
			// exists (RFC 6902 4.1).
			ops = append(ops, Operation{Op: "add", Path: tp + "/spec/containers/" + strconv.Itoa(i) + "/image", Value: rw.originals[c]})
		}
	}
	workload := map[string]string{
		AnnotationRestoredFrom:   rw.restoredFrom,
		AnnotationOriginalImages: rw.originalImages,
	}
	ops = append(ops, annotationOps(w.manifest.Object, []string{"metadata"}, workload)...)

	template := map[string]string{}
	var stale []string
	for k, v := range rw.templateAnnotations() {
		if v != "" {
			template[k] = v
		} else if _, left := w.template().Annotations[k]; left {
			stale = append(stale, k)
		}
	}
	sort.Strings(stale)
	ops = append(ops, annotationOps(w.manifest.Object, append(append([]string{}, w.kind.templatePath...), "metadata"), template, stale...)...)
	ops = append(ops, rw.pullSecret.ops(tp)...)
	strategy, err := rw.strategyOp(w)
	if err != nil || strategy == nil {
		return ops, err
	}
	return append(ops, *strategy), nil
}

// strategyOp sets the StatefulSet updateStrategy the rewrite gives w (the
// pods it keeps), nil when it needs none. The value is taken from the
// rewritten manifest, so that the patch and Rewrite agree to the field;
// w is Patches' own, and is rewritten here.
func (rw *rewrite) strategyOp(w *workload) (*Operation, error) {
	if !needsPartition(w.statefulSet(), rw.keepPods) {
		return nil, nil
	}
	rw.apply(w)
	out, err := w.encode()
	if err != nil {
		return nil, err
	}
	strategy, found, err := unstructured.NestedMap(out.Object, "spec", "updateStrategy")
	if err != nil || !found {
		return nil, fmt.Errorf("restore %s: rewritten spec.updateStrategy: found %v, %v", w, found, err)
	}
	// "add" replaces a member that exists (RFC 6902 4.1); spec exists.
	return &Operation{Op: "add", Path: "/spec/updateStrategy", Value: strategy}, nil
}

// annotationOps sets keys in the annotations of the metadata at path,
// creating the metadata or the map when missing, and removes the keys in
// remove that a previous rewrite left. It reads the manifest (decoded
// already, so every object on the path is one): whether a map exists is a
// matter of the JSON document, which a typed object does not show.
func annotationOps(obj map[string]interface{}, path []string, set map[string]string, remove ...string) []Operation {
	pointer := "/" + strings.Join(path, "/")
	if !present(obj, path...) {
		return []Operation{{Op: "add", Path: pointer, Value: map[string]interface{}{"annotations": set}}}
	}
	if !present(obj, append(path, "annotations")...) {
		return []Operation{{Op: "add", Path: pointer + "/annotations", Value: set}}
	}
	var ops []Operation
	for _, k := range sortedKeys(set) {
		ops = append(ops, Operation{Op: "add", Path: pointer + "/annotations/" + escape(k), Value: set[k]})
	}
	for _, k := range remove {
		ops = append(ops, Operation{Op: "remove", Path: pointer + "/annotations/" + escape(k)})
	}
	return ops
}

// present says whether the manifest has a value (not null) at path.
func present(obj map[string]interface{}, path ...string) bool {
	v, found, err := unstructured.NestedFieldNoCopy(obj, path...)
	return err == nil && found && v != nil
}

// escape encodes a JSON-pointer reference token (RFC 6901).
func escape(token string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(token)
}

// String shows an operation for logs and errors.
func (o Operation) String() string { return fmt.Sprintf("%s %s", o.Op, o.Path) }
