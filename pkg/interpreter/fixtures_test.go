package interpreter

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"

	stateshiftv1alpha1 "github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// Fixtures are realistic member objects: resources, volumes, a claim
// template, Karmada's generation annotation and a status.

func podTemplate(app string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}, Annotations: map[string]string{"prometheus.io/scrape": "true"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: app,
			NodeSelector:       map[string]string{"kubernetes.io/os": "linux"},
			Containers: []corev1.Container{{
				Name:  "app",
				Image: "registry.example.com/team/" + app + ":1.4.2",
				Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}},
				Env: []corev1.EnvVar{
					{Name: "MODE", Value: "primary"},
					{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
						LocalObjectReference: corev1.LocalObjectReference{Name: app + "-credentials"}, Key: "password"}}},
				},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("1Gi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")},
				},
				VolumeMounts:   []corev1.VolumeMount{{Name: "data", MountPath: "/var/lib/data"}, {Name: "config", MountPath: "/etc/app"}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromInt32(8080)}}},
			}, {
				Name:  "metrics",
				Image: "registry.example.com/team/exporter:0.9",
				Args:  []string{"--listen=:9100"},
			}},
			Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: app + "-config"}}}}},
		},
	}
}

func memberMeta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: name, Namespace: "shop", Generation: 4, ResourceVersion: "81234",
		UID:    types.UID("6d1f1c1e-0000-4000-8000-00000000000" + string(rune('0'+len(name)%10))),
		Labels: map[string]string{"app": name, "propagationpolicy.karmada.io/permanent-id": "a8b9"},
		Annotations: map[string]string{
			workv1alpha2.ResourceTemplateGenerationAnnotationKey: "4",
			"team": "payments",
		},
	}
}

func statefulSet() *appsv1.StatefulSet {
	return &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: memberMeta("db"),
		Spec: appsv1.StatefulSetSpec{
			Replicas:    ptr(int32(3)),
			ServiceName: "db",
			Selector:    &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template:    podTemplate("db"),
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{
					AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("10Gi")}},
				},
			}},
		},
		Status: appsv1.StatefulSetStatus{
			ObservedGeneration: 4, Replicas: 3, ReadyReplicas: 3, CurrentReplicas: 3, UpdatedReplicas: 3, AvailableReplicas: 3,
			CurrentRevision: "db-7d9f8", UpdateRevision: "db-7d9f8", CollisionCount: ptr(int32(0)),
		},
	}
}

func deployment() *appsv1.Deployment {
	tmpl := podTemplate("web")
	tmpl.Spec.Volumes = append(tmpl.Spec.Volumes, corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "web-data"}}})
	return &appsv1.Deployment{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: memberMeta("web"),
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(2)),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: tmpl,
		},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 4, Replicas: 2, UpdatedReplicas: 2, ReadyReplicas: 2, AvailableReplicas: 2},
	}
}

func checkpoint(phase stateshiftv1alpha1.CheckpointPhase) *stateshiftv1alpha1.Checkpoint {
	return &stateshiftv1alpha1.Checkpoint{
		TypeMeta:   metav1.TypeMeta{APIVersion: "stateshift.io/v1alpha1", Kind: "Checkpoint"},
		ObjectMeta: metav1.ObjectMeta{Name: "db-0-ckpt-1", Namespace: "shop", Generation: 1},
		Spec:       stateshiftv1alpha1.CheckpointSpec{PodName: "db-0", Repository: "registry.example.com/ckpt/db"},
		Status: stateshiftv1alpha1.CheckpointStatus{
			Phase: phase, NodeName: "node-a", Attempts: 1, ArchiveBytes: 1 << 20,
			Containers: []stateshiftv1alpha1.ContainerCheckpoint{{Name: "app", Image: ckptImage, ArchiveBytes: 1 << 20}},
			Message:    "checkpoint " + string(phase),
		},
	}
}

const ckptImage = "registry.example.com/ckpt/db@sha256:1111111111111111111111111111111111111111111111111111111111111111"

func ptr[T any](v T) *T { return &v }

func toU(t testing.TB, obj runtime.Object) *unstructured.Unstructured {
	t.Helper()
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		t.Fatalf("to unstructured: %v", err)
	}
	return &unstructured.Unstructured{Object: m}
}

func raw(t testing.TB, u *unstructured.Unstructured) runtime.RawExtension {
	t.Helper()
	b, err := json.Marshal(u.Object)
	if err != nil {
		t.Fatal(err)
	}
	return runtime.RawExtension{Raw: b}
}

// request builds an interpreter request for obj.
func request(t testing.TB, op configv1alpha1.InterpreterOperation, obj *unstructured.Unstructured) configv1alpha1.ResourceInterpreterRequest {
	gvk := obj.GroupVersionKind()
	return configv1alpha1.ResourceInterpreterRequest{
		UID:       types.UID("uid-" + string(op)),
		Kind:      metav1.GroupVersionKind{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind},
		Name:      obj.GetName(),
		Namespace: obj.GetNamespace(),
		Operation: op,
		Object:    raw(t, obj),
	}
}

func body(t testing.TB, req configv1alpha1.ResourceInterpreterRequest) []byte {
	t.Helper()
	b, err := json.Marshal(configv1alpha1.ResourceInterpreterContext{
		TypeMeta: metav1.TypeMeta{APIVersion: "config.karmada.io/v1alpha1", Kind: "ResourceInterpreterContext"},
		Request:  &req,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var testHandler = NewHandler()

// post sends a raw body through the full HTTP handler (Karmada's library
// plus our wrapper) and decodes the response.
func post(t testing.TB, b []byte, contentType string) configv1alpha1.ResourceInterpreterResponse {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(b))
	r.Header.Set("Content-Type", contentType)
	w := httptest.NewRecorder()
	testHandler.ServeHTTP(w, r)
	var rc configv1alpha1.ResourceInterpreterContext
	if err := json.Unmarshal(w.Body.Bytes(), &rc); err != nil || rc.Response == nil {
		t.Fatalf("response %q: %v", w.Body.String(), err)
	}
	return *rc.Response
}

// call runs a request and checks the response is successful and echoes the UID.
func call(t testing.TB, req configv1alpha1.ResourceInterpreterRequest) configv1alpha1.ResourceInterpreterResponse {
	t.Helper()
	resp := post(t, body(t, req), "application/json")
	if !resp.Successful {
		t.Fatalf("%s: unsuccessful: %+v", req.Operation, resp.Status)
	}
	if resp.UID != req.UID {
		t.Fatalf("uid %q, want %q", resp.UID, req.UID)
	}
	return resp
}

// patched applies the response's JSON patch to the request's object.
func patched(t testing.TB, req configv1alpha1.ResourceInterpreterRequest, resp configv1alpha1.ResourceInterpreterResponse) *unstructured.Unstructured {
	t.Helper()
	doc := req.Object.Raw
	if len(resp.Patch) > 0 {
		if resp.PatchType == nil || *resp.PatchType != configv1alpha1.PatchTypeJSONPatch {
			t.Fatalf("patch type %v", resp.PatchType)
		}
		p, err := jsonpatch.DecodePatch(resp.Patch)
		if err != nil {
			t.Fatalf("decode patch: %v", err)
		}
		if doc, err = p.Apply(doc); err != nil {
			t.Fatalf("apply patch %s: %v", resp.Patch, err)
		}
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(doc); err != nil {
		t.Fatal(err)
	}
	return u
}

// sameJSON compares through JSON, as Karmada sees the objects.
func sameJSON(t testing.TB, got, want interface{}) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	var gv, wv interface{}
	_ = json.Unmarshal(g, &gv)
	_ = json.Unmarshal(w, &wv)
	if !reflect.DeepEqual(gv, wv) {
		t.Fatalf("got\n%s\nwant\n%s", g, w)
	}
}

func workloads(t testing.TB) []*unstructured.Unstructured {
	return []*unstructured.Unstructured{toU(t, statefulSet()), toU(t, deployment())}
}
