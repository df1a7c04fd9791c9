package interpreter

import (
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

type reviseReplicaInterpreter func(obj *unstructured.Unstructured, replicas int64) (*unstructured.Unstructured, error)

// reviseReplicaInterpreters stay Karmada's: ReviseReplica is called once per
// target cluster without the cluster's name (binding controller ensureWork),
// so it cannot carry a restore; an OverridePolicy does (pkg/restore).
var reviseReplicaInterpreters = map[schema.GroupVersionKind]reviseReplicaInterpreter{
	statefulSetGVK: karmada.ReviseReplica,
	deploymentGVK:  karmada.ReviseReplica,
}
