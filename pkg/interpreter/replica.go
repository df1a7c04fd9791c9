package interpreter

import (
	workv1alpha2 "github.com/karmada-io/karmada/pkg/apis/work/v1alpha2"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

type replicaInterpreter func(obj *unstructured.Unstructured) (int32, *workv1alpha2.ReplicaRequirements, error)

// replicaInterpreters: the workloads' replicas and per-replica requirements
// are Karmada's. A Checkpoint is not a workload.
var replicaInterpreters = map[schema.GroupVersionKind]replicaInterpreter{
	statefulSetGVK: karmada.GetReplicas,
	deploymentGVK:  karmada.GetReplicas,
}
