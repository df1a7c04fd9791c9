package main

import (
	"time"

	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The request bodies: a realistically sized StatefulSet (resources, env,
// probes, volumes, a claim template, status) for ours, and a Workload with
// the same pod template and status for Karmada's example. Each webhook
// gets InterpretReplica, ReviseReplica and InterpretStatus in turn.

func podTemplate() corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "db", "tier": "data"},
			Annotations: map[string]string{"prometheus.io/scrape": "true", "prometheus.io/port": "9100"}},
		Spec: corev1.PodSpec{
			ServiceAccountName: "db",
			NodeSelector:       map[string]string{"kubernetes.io/os": "linux"},
			Tolerations:        []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "db", Effect: corev1.TaintEffectNoSchedule}},
			Containers: []corev1.Container{{
				Name:  "db",
				Image: "registry.example.com/team/db:15.4",
				Ports: []corev1.ContainerPort{{Name: "sql", ContainerPort: 5432}},
				Env: []corev1.EnvVar{
					{Name: "PGDATA", Value: "/var/lib/db/data"},
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
						LocalObjectReference: corev1.LocalObjectReference{Name: "db-credentials"}, Key: "password"}}},
				},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("4Gi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("8Gi")},
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/var/lib/db"}, {Name: "config", MountPath: "/etc/db"}},
				ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"pg_isready", "-U", "app"}}},
					PeriodSeconds: 5},
				LivenessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("sql")}},
					InitialDelaySeconds: 30},
			}, {
				Name:      "exporter",
				Image:     "registry.example.com/team/db-exporter:0.15",
				Args:      []string{"--web.listen-address=:9100"},
				Ports:     []corev1.ContainerPort{{Name: "metrics", ContainerPort: 9100}},
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("50m"), corev1.ResourceMemory: resource.MustParse("64Mi")}},
			}},
			Volumes: []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "db-config"}}}}},
		},
	}
}

func meta(kind string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name: "db", Namespace: "shop", Generation: 7, ResourceVersion: "912345", UID: types.UID("0c8a7d52-1c1e-4b7a-9d1e-3f0f5e2a9b11"),
		Labels: map[string]string{"app": "db", "propagationpolicy.karmada.io/permanent-id": "5f0c1d2e-8c1b-4e63-a1a4-9f0b7e2d6c11"},
		Annotations: map[string]string{
			"resourcetemplate.karmada.io/generation": "7",
			"stateshift.io/latest-checkpoint":        "db-0-ckpt-20261126",
			"stateshift.io/latest-checkpoint-time":   "2026-11-26T07:00:00Z",
			"kubectl.kubernetes.io/last-applied-configuration": `{"apiVersion":"apps/v1","kind":"` + kind +
				`","metadata":{"name":"db","namespace":"shop"},"spec":{"replicas":3}}`,
		},
	}
}

func statefulSet() *appsv1.StatefulSet {
	three := int32(3)
	return &appsv1.StatefulSet{
		TypeMeta:   metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
		ObjectMeta: meta("StatefulSet"),
		Spec: appsv1.StatefulSetSpec{
			Replicas: &three, ServiceName: "db",
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}},
			Template: podTemplate(),
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{{
				ObjectMeta: metav1.ObjectMeta{Name: "data"},
				Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("50Gi")}}},
			}},
		},
		Status: appsv1.StatefulSetStatus{ObservedGeneration: 7, Replicas: 3, ReadyReplicas: 3, CurrentReplicas: 3, UpdatedReplicas: 3,
			AvailableReplicas: 3, CurrentRevision: "db-6b8f9c7d5", UpdateRevision: "db-6b8f9c7d5"},
	}
}

// workload is Karmada's example kind, workload.example.io/v1alpha1 Workload.
type workload struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Replicas *int32                 `json:"replicas"`
		Template corev1.PodTemplateSpec `json:"template"`
	} `json:"spec"`
	Status struct {
		ReadyReplicas int32              `json:"readyReplicas"`
		Conditions    []metav1.Condition `json:"conditions"`
	} `json:"status"`
}

func exampleWorkload() *workload {
	three := int32(3)
	w := &workload{TypeMeta: metav1.TypeMeta{APIVersion: "workload.example.io/v1alpha1", Kind: "Workload"}, ObjectMeta: meta("Workload")}
	w.Spec.Replicas = &three
	w.Spec.Template = podTemplate()
	w.Status.ReadyReplicas = 3
	w.Status.Conditions = []metav1.Condition{{Type: "Available", Status: metav1.ConditionTrue, Reason: "MinimumReplicasAvailable",
		Message: "Workload has minimum availability.", LastTransitionTime: metav1.Date(2026, 11, 26, 7, 0, 0, 0, time.UTC), ObservedGeneration: 7}}
	return w
}

func bodies(gvk metav1.GroupVersionKind, object []byte) [][]byte {
	two := int32(2)
	var out [][]byte
	for _, op := range []configv1alpha1.InterpreterOperation{
		configv1alpha1.InterpreterOperationInterpretReplica,
		configv1alpha1.InterpreterOperationReviseReplica,
		configv1alpha1.InterpreterOperationInterpretStatus,
	} {
		req := configv1alpha1.ResourceInterpreterRequest{
			UID: types.UID("bench-" + string(op)), Kind: gvk, Name: "db", Namespace: "shop", Operation: op,
			Object: runtime.RawExtension{Raw: object},
		}
		if op == configv1alpha1.InterpreterOperationReviseReplica {
			req.DesiredReplicas = &two
		}
		out = append(out, mustJSON(configv1alpha1.ResourceInterpreterContext{
			TypeMeta: metav1.TypeMeta{APIVersion: "config.karmada.io/v1alpha1", Kind: "ResourceInterpreterContext"},
			Request:  &req,
		}))
	}
	return out
}

func statefulSetBodies() ([][]byte, error) {
	return bodies(metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}, mustJSON(statefulSet())), nil
}

func workloadBodies() ([][]byte, error) {
	return bodies(metav1.GroupVersionKind{Group: "workload.example.io", Version: "v1alpha1", Kind: "Workload"}, mustJSON(exampleWorkload())), nil
}
