package restore

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Karmada's native interpreter reads and edits workloads as typed objects
// (helper.ConvertToTypedObject, then back with helper.ToUnstructured). So
// does this package: a manifest is decoded once where it enters (Rewrite,
// Patches, Retain, KeepRestored), a malformed one is refused there naming
// the field it gets wrong, and every edit is made on typed fields. Unlike
// Karmada's round trip, encode writes back only what the edits changed: the
// manifest keeps the fields these types do not know (a newer API server's)
// and gets none of the converter's empty defaults (resources: {},
// status: {}), so what Karmada applies differs only by the edits.

// workloadObject is a typed workload: its metadata and the object itself.
type workloadObject interface {
	metav1.Object
	metav1.ObjectMetaAccessor
	runtime.Object
}

// workloadKind is what the package needs to know of a supported kind.
type workloadKind struct {
	newObject   func() workloadObject
	podTemplate func(workloadObject) *corev1.PodTemplateSpec
	// replicas are the desired (the API server's default when unset) and
	// the ready replicas.
	replicas func(workloadObject) (desired, ready int32)
	// templatePath is where the pod template sits in the manifest, for
	// JSON patches.
	templatePath []string
	// parts are what of the typed object this package edits (a pointer
	// into it), by their path in the manifest: encode writes back these.
	parts map[string]func(workloadObject) interface{}
}

// workloadKinds are the supported kinds. Adding a kind is one entry.
var workloadKinds = map[schema.GroupVersionKind]workloadKind{
	appsv1.SchemeGroupVersion.WithKind("Deployment"): {
		newObject:   func() workloadObject { return &appsv1.Deployment{} },
		podTemplate: func(o workloadObject) *corev1.PodTemplateSpec { return &o.(*appsv1.Deployment).Spec.Template },
		replicas: func(o workloadObject) (int32, int32) {
			d := o.(*appsv1.Deployment)
			return replicasOrDefault(d.Spec.Replicas), d.Status.ReadyReplicas
		},
		templatePath: []string{"spec", "template"},
		parts: map[string]func(workloadObject) interface{}{
			"metadata":      func(o workloadObject) interface{} { return o.GetObjectMeta() },
			"spec.template": func(o workloadObject) interface{} { return &o.(*appsv1.Deployment).Spec.Template },
		},
	},
	appsv1.SchemeGroupVersion.WithKind("StatefulSet"): {
		newObject:   func() workloadObject { return &appsv1.StatefulSet{} },
		podTemplate: func(o workloadObject) *corev1.PodTemplateSpec { return &o.(*appsv1.StatefulSet).Spec.Template },
		replicas: func(o workloadObject) (int32, int32) {
			s := o.(*appsv1.StatefulSet)
			return replicasOrDefault(s.Spec.Replicas), s.Status.ReadyReplicas
		},
		templatePath: []string{"spec", "template"},
		parts: map[string]func(workloadObject) interface{}{
			"metadata":            func(o workloadObject) interface{} { return o.GetObjectMeta() },
			"spec.template":       func(o workloadObject) interface{} { return &o.(*appsv1.StatefulSet).Spec.Template },
			"spec.updateStrategy": func(o workloadObject) interface{} { return &o.(*appsv1.StatefulSet).Spec.UpdateStrategy },
		},
	},
}

func replicasOrDefault(replicas *int32) int32 {
	if replicas == nil {
		return 1 // the API server's default
	}
	return *replicas
}

// Supported says whether the package knows the kind.
func Supported(gvk schema.GroupVersionKind) bool {
	_, ok := workloadKinds[gvk]
	return ok
}

// workload is a manifest decoded for reading and editing.
type workload struct {
	manifest *unstructured.Unstructured // as given; never changed
	gvk      schema.GroupVersionKind
	kind     workloadKind
	object   workloadObject // the typed manifest; edits go here
	decoded  workloadObject // the typed manifest as decoded: encode's baseline
}

// decodeWorkload decodes obj into its typed kind.
func decodeWorkload(obj *unstructured.Unstructured) (*workload, error) {
	if obj == nil {
		return nil, errors.New("no workload")
	}
	gvk := obj.GroupVersionKind()
	kind, ok := workloadKinds[gvk]
	if !ok {
		return nil, fmt.Errorf("%s %s/%s: kind %s is not supported (only apps/v1 Deployment and StatefulSet)",
			gvk.Kind, obj.GetNamespace(), obj.GetName(), gvk)
	}
	object := kind.newObject()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, object); err != nil {
		return nil, fmt.Errorf("%s %s/%s: %w", gvk.Kind, obj.GetNamespace(), obj.GetName(), malformedField(obj.Object, kind, err))
	}
	decoded, ok := object.DeepCopyObject().(workloadObject)
	if !ok {
		return nil, fmt.Errorf("%s %s/%s: copy is a %T", gvk.Kind, obj.GetNamespace(), obj.GetName(), object.DeepCopyObject())
	}
	return &workload{manifest: obj, gvk: gvk, kind: kind, object: object, decoded: decoded}, nil
}

// malformedField names the field of a manifest the converter refused: its
// own errors ("cannot restore slice from string") do not say where. The
// JSON decoder, which decodes the same types the same way, does.
func malformedField(content map[string]interface{}, kind workloadKind, convertErr error) error {
	raw, err := json.Marshal(content)
	if err != nil {
		return convertErr
	}
	err = json.Unmarshal(raw, kind.newObject())
	var typeErr *json.UnmarshalTypeError
	if !errors.As(err, &typeErr) || typeErr.Field == "" {
		return convertErr
	}
	return fmt.Errorf("field %s is %s, not %s", typeErr.Field, jsonValueName(typeErr.Value), typeName(typeErr.Type))
}

func jsonValueName(value string) string {
	switch value {
	case "array":
		return "a list"
	case "object":
		return "an object"
	case "":
		return "a value"
	}
	return "a " + value
}

func typeName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	}
	return "a " + t.String()
}

// String names the workload in errors.
func (w *workload) String() string {
	return fmt.Sprintf("%s %s/%s", w.gvk.Kind, w.manifest.GetNamespace(), w.manifest.GetName())
}

func (w *workload) template() *corev1.PodTemplateSpec { return w.kind.podTemplate(w.object) }

// statefulSet is the typed StatefulSet, nil for other kinds.
func (w *workload) statefulSet() *appsv1.StatefulSet {
	s, _ := w.object.(*appsv1.StatefulSet)
	return s
}

// encode is the manifest with the typed edits written back, a new object.
// Only the parts the package edits are compared and encoded: the rest
// cannot have changed, and encoding a whole workload costs more than the
// rest of a Retain.
func (w *workload) encode() (*unstructured.Unstructured, error) {
	out := w.manifest.DeepCopy()
	for _, path := range sortedKeys(w.kind.parts) {
		part := w.kind.parts[path]
		// reflect's DeepEqual, several times faster than the API's
		// semantic one: a nil map set to an empty one only costs an
		// encode that finds no change.
		if reflect.DeepEqual(part(w.decoded), part(w.object)) {
			continue
		}
		before, err := runtime.DefaultUnstructuredConverter.ToUnstructured(part(w.decoded))
		if err != nil {
			return nil, fmt.Errorf("%s: encode %s: %w", w, path, err)
		}
		after, err := runtime.DefaultUnstructuredConverter.ToUnstructured(part(w.object))
		if err != nil {
			return nil, fmt.Errorf("%s: encode %s: %w", w, path, err)
		}
		parent, key := parentMap(out.Object, strings.Split(path, "."))
		parent[key] = changedValue(parent[key], before, after)
	}
	return out, nil
}

// parentMap is the map holding the last key of path in obj, created where
// missing (or null), and that key.
func parentMap(obj map[string]interface{}, path []string) (map[string]interface{}, string) {
	for _, k := range path[:len(path)-1] {
		next, ok := obj[k].(map[string]interface{})
		if !ok {
			next = map[string]interface{}{}
			obj[k] = next
		}
		obj = next
	}
	return obj, path[len(path)-1]
}

// applyChanges makes target (a manifest) show what changed from before to
// after, two encodings of one typed object before and after the edits:
// everything else in target stays as it was. Lists of one length are
// changed element by element (a container's image, not the container);
// other lists and values are replaced whole.
func applyChanges(target, before, after map[string]interface{}) {
	for k := range before {
		if _, kept := after[k]; !kept {
			delete(target, k)
		}
	}
	for k, a := range after {
		if b, had := before[k]; had && reflect.DeepEqual(a, b) {
			continue
		}
		target[k] = changedValue(target[k], before[k], a)
	}
}

// changedValue is target's value changed from before to after.
func changedValue(target, before, after interface{}) interface{} {
	switch a := after.(type) {
	case map[string]interface{}:
		t, tIsMap := target.(map[string]interface{})
		b, bIsMap := before.(map[string]interface{})
		if tIsMap && bIsMap {
			applyChanges(t, b, a)
			return t
		}
	case []interface{}:
		t, tIsList := target.([]interface{})
		b, bIsList := before.([]interface{})
		switch {
		case tIsList && bIsList && len(t) == len(b) && len(b) == len(a):
			for i := range a {
				if !reflect.DeepEqual(a[i], b[i]) {
					t[i] = changedValue(t[i], b[i], a[i])
				}
			}
			return t
		case tIsList && bIsList && len(t) == len(b):
			return resizedList(t, b, a)
		}
	}
	return after // a fresh value of the converter's: not shared
}

// resizedList is after, a list that grew or shrank from before, with each
// element it keeps unchanged (matched in order) taken from target: an
// entry added to or removed from imagePullSecrets leaves the others as
// the manifest wrote them.
func resizedList(target, before, after []interface{}) []interface{} {
	out := make([]interface{}, len(after))
	next := 0 // the first element of before not matched yet
	for i, a := range after {
		j := next
		for j < len(before) && !reflect.DeepEqual(before[j], a) {
			j++
		}
		if j == len(before) {
			out[i] = a
			continue
		}
		out[i], next = target[j], j+1
	}
	return out
}
