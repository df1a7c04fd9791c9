{{/* RBAC in the Karmada API (the controller's identity there) and, labeled
     for delivery, in every member. Rules mirror artifacts/controller and
     artifacts/agent. */}}
{{- define "stateshift.karmada.rbac" -}}
{{- $sa := .Values.controller.karmadaIdentity.serviceAccount -}}
{{- $ns := .Release.Namespace -}}
# The identity the migration controller's kubeconfig may authenticate as.
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $sa }}
  namespace: {{ $ns }}
  labels:
    {{- include "stateshift.karmadaLabels" . | nindent 4 }}
automountServiceAccountToken: false
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: stateshift-migration-controller
  labels:
    {{- include "stateshift.karmadaLabels" . | nindent 4 }}
rules:
  - apiGroups: ["apps"]
    resources: ["statefulsets", "deployments"]
    verbs: ["get", "list", "watch"]
  - apiGroups: ["stateshift.io"]
    resources: ["checkpointpolicies"]
    verbs: ["get", "list", "watch", "create", "update"]
  # Finished Migrations beyond a policy's retention.migrations are deleted.
  - apiGroups: ["stateshift.io"]
    resources: ["migrations"]
    verbs: ["get", "list", "watch", "create", "update", "delete"]
  - apiGroups: ["stateshift.io"]
    resources: ["checkpointpolicies/status", "migrations/status"]
    verbs: ["get", "update", "patch"]
  - apiGroups: ["stateshift.io"]
    resources: ["checkpoints"]
    verbs: ["get", "list", "watch", "create", "delete", "patch"]
  # Propagation of Checkpoints (one policy per namespace and cluster) and
  # of pull Secrets (one per Secret, deleted when no CheckpointPolicy names
  # it).
  - apiGroups: ["policy.karmada.io"]
    resources: ["propagationpolicies"]
    verbs: ["get", "list", "watch", "create", "update", "delete"]
  - apiGroups: ["policy.karmada.io"]
    resources: ["overridepolicies"]
    verbs: ["get", "list", "watch", "create", "update", "delete"]
  - apiGroups: ["work.karmada.io"]
    resources: ["resourcebindings"]
    verbs: ["get", "list", "watch", "patch"]
  # The Scheduled condition of Checkpoints' bindings, which the controller
  # places itself (schedulerName stateshift-checkpoints).
  - apiGroups: ["work.karmada.io"]
    resources: ["resourcebindings/status"]
    verbs: ["patch"]
  - apiGroups: ["cluster.karmada.io"]
    resources: ["clusters"]
    verbs: ["get", "list", "watch"]
  # A destination whose pods fail to restore is labelled
  # stateshift.io/restore=false (with the reason as an annotation).
  - apiGroups: ["cluster.karmada.io"]
    resources: ["clusters"]
    verbs: ["patch"]
  - apiGroups: ["cluster.karmada.io"]
    resources: ["clusters/proxy"]
    verbs: ["get"]
  {{- if eq .Values.controller.checkpointDelivery "proxy" }}
  # Proxy delivery: the members' copies of Checkpoints are created and
  # deleted through the proxy, and the controller alone writes the status
  # of the Checkpoints here (mirrored from the copies).
  - apiGroups: ["cluster.karmada.io"]
    resources: ["clusters/proxy"]
    verbs: ["create", "delete"]
  - apiGroups: ["stateshift.io"]
    resources: ["checkpoints/status"]
    verbs: ["update"]
  {{- end }}
  # A namespace's allowed checkpoint repositories (annotation
  # stateshift.io/allowed-repositories), read before each Checkpoint.
  - apiGroups: [""]
    resources: ["namespaces"]
    verbs: ["get"]
  # A CheckpointPolicy's pull Secret (spec.pullSecretRef), read by name in
  # the policy's own namespace, only to check that it exists as a
  # dockerconfigjson before a restore plan names it and it is propagated
  # (no list, no watch: the controller cannot find Secrets it is not
  # told of). Drop it if no policy uses pullSecretRef.
  - apiGroups: [""]
    resources: ["secrets"]
    verbs: ["get"]
  - apiGroups: [""]
    resources: ["events"]
    verbs: ["create", "patch"]
  - apiGroups: ["events.k8s.io"]
    resources: ["events"]
    verbs: ["create", "patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: stateshift-migration-controller
  labels:
    {{- include "stateshift.karmadaLabels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: stateshift-migration-controller
subjects:
  - kind: ServiceAccount
    name: {{ $sa }}
    namespace: {{ $ns }}
---
# Leader election (a Lease per the controller's --leader-election-id) and
# the Secrets the controller reads (registry credentials).
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: stateshift-migration-controller
  namespace: {{ .Values.controller.leaderElection.namespace | default $ns }}
  labels:
    {{- include "stateshift.karmadaLabels" . | nindent 4 }}
rules:
  - apiGroups: ["coordination.k8s.io"]
    resources: ["leases"]
    verbs: ["get", "create", "update"]
  - apiGroups: [""]
    resources: ["events"]
    verbs: ["create", "patch"]
  - apiGroups: [""]
    resources: ["secrets"]
    verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: stateshift-migration-controller
  namespace: {{ .Values.controller.leaderElection.namespace | default $ns }}
  labels:
    {{- include "stateshift.karmadaLabels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: stateshift-migration-controller
subjects:
  - kind: ServiceAccount
    name: {{ $sa }}
    namespace: {{ $ns }}
{{- if .Values.members.enabled }}
---
# Members: Karmada's cluster proxy impersonates the controller's groups
# (karmada-cluster/karmada-impersonator is Karmada's own identity there).
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: stateshift-impersonate-controller-groups
  labels:
    {{- include "stateshift.memberLabels" . | nindent 4 }}
rules:
  - apiGroups: [""]
    resources: ["groups"]
    resourceNames: ["system:serviceaccounts", "system:serviceaccounts:{{ $ns }}"]
    verbs: ["impersonate"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: stateshift-impersonate-controller-groups
  labels:
    {{- include "stateshift.memberLabels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: stateshift-impersonate-controller-groups
subjects:
  - kind: ServiceAccount
    name: karmada-impersonator
    namespace: karmada-cluster
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: stateshift-migration-controller-pods
  labels:
    {{- include "stateshift.memberLabels" . | nindent 4 }}
rules:
  - apiGroups: [""]
    resources: ["pods"]
    verbs: ["get", "list", "watch"]
  {{- if eq .Values.controller.checkpointDelivery "proxy" }}
  # Proxy delivery: the controller writes the copies of Checkpoints here
  # and watches their status (the agent writes it).
  - apiGroups: ["stateshift.io"]
    resources: ["checkpoints"]
    verbs: ["get", "list", "watch", "create", "delete"]
  {{- end }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: stateshift-migration-controller-pods
  labels:
    {{- include "stateshift.memberLabels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: stateshift-migration-controller-pods
subjects:
  - kind: ServiceAccount
    name: {{ $sa }}
    namespace: {{ $ns }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: stateshift-checkpoint-agent
  namespace: {{ $ns }}
  labels:
    {{- include "stateshift.memberLabels" . | nindent 4 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: stateshift-checkpoint-agent
  labels:
    {{- include "stateshift.memberLabels" . | nindent 4 }}
rules:
  - apiGroups: [""]
    resources: ["nodes/checkpoint"]
    verbs: ["create"]
  - apiGroups: [""]
    resources: ["nodes"]
    verbs: ["get"]
  - apiGroups: [""]
    resources: ["pods"]
    verbs: ["get", "list", "watch"]
  - apiGroups: ["stateshift.io"]
    resources: ["checkpoints"]
    verbs: ["get", "list", "watch"]
  - apiGroups: ["stateshift.io"]
    resources: ["checkpoints/status"]
    verbs: ["get", "update", "patch"]
  - apiGroups: ["events.k8s.io"]
    resources: ["events"]
    verbs: ["create", "patch"]
  - apiGroups: ["admissionregistration.k8s.io"]
    resources: ["mutatingwebhookconfigurations"]
    resourceNames: ["stateshift-pod-restore"]
    verbs: ["get"]
  {{- if eq .Values.members.agent.metrics.mode "secure" }}
  # --metrics-secure: who is asking for /metrics, and may they.
  - apiGroups: ["authentication.k8s.io"]
    resources: ["tokenreviews"]
    verbs: ["create"]
  - apiGroups: ["authorization.k8s.io"]
    resources: ["subjectaccessreviews"]
    verbs: ["create"]
  {{- end }}
---
{{- if eq .Values.members.agent.metrics.mode "secure" }}
# Bind a scraper's identity to this role to let it read the agents'
# metrics (and nothing else).
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: stateshift-metrics-reader
  labels:
    {{- include "stateshift.memberLabels" . | nindent 4 }}
rules:
  - nonResourceURLs: ["/metrics"]
    verbs: ["get"]
---
{{- end }}
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: stateshift-checkpoint-agent
  labels:
    {{- include "stateshift.memberLabels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: stateshift-checkpoint-agent
subjects:
  - kind: ServiceAccount
    name: stateshift-checkpoint-agent
    namespace: {{ $ns }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: stateshift-checkpoint-agent-credentials
  namespace: {{ $ns }}
  labels:
    {{- include "stateshift.memberLabels" . | nindent 4 }}
rules:
  - apiGroups: [""]
    resources: ["secrets"]
    resourceNames: {{ toJson .Values.members.agent.registrySecrets }}
    verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: stateshift-checkpoint-agent-credentials
  namespace: {{ $ns }}
  labels:
    {{- include "stateshift.memberLabels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: stateshift-checkpoint-agent-credentials
subjects:
  - kind: ServiceAccount
    name: stateshift-checkpoint-agent
    namespace: {{ $ns }}
---
apiVersion: v1
kind: ServiceAccount
metadata:
  name: stateshift-pod-restore
  namespace: {{ $ns }}
  labels:
    {{- include "stateshift.memberLabels" . | nindent 4 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: stateshift-pod-restore
  labels:
    {{- include "stateshift.memberLabels" . | nindent 4 }}
rules:
  # The owner of a pod being admitted.
  - apiGroups: ["apps"]
    resources: ["statefulsets", "replicasets", "deployments"]
    verbs: ["get"]
  # The scope controller's metadata-only watch: which restores completed.
  - apiGroups: ["apps"]
    resources: ["statefulsets", "deployments"]
    verbs: ["list", "watch"]
  # Its own webhook configuration, by name: the completed restores in its
  # conditions.
  - apiGroups: ["admissionregistration.k8s.io"]
    resources: ["mutatingwebhookconfigurations"]
    resourceNames: ["stateshift-pod-restore"]
    verbs: ["get", "update"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: stateshift-pod-restore
  labels:
    {{- include "stateshift.memberLabels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: stateshift-pod-restore
subjects:
  - kind: ServiceAccount
    name: stateshift-pod-restore
    namespace: {{ $ns }}
{{- end }}
{{- with trim (include "stateshift.karmada.doctorRBAC" .) }}
---
{{ . }}
{{- end }}
{{- end -}}

{{/* Who may run `kubectl stateshift doctor` (members.doctor.subjects): in
     the Karmada API the clusters and their proxy (Karmada's unified auth
     then lets the proxy impersonate these subjects on every member), and on
     every member, in the agents' namespace, what the doctor does there:
     read the agent DaemonSet and its pods, exec into them. */}}
{{- define "stateshift.karmada.doctorRBAC" -}}
{{- $ns := .Release.Namespace -}}
{{- with .Values.members.doctor.subjects }}
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: stateshift-doctor
  labels:
    {{- include "stateshift.karmadaLabels" $ | nindent 4 }}
rules:
  - apiGroups: ["cluster.karmada.io"]
    resources: ["clusters"]
    verbs: ["get", "list"]
  # GET for reads, POST (create) for exec through the proxy.
  - apiGroups: ["cluster.karmada.io"]
    resources: ["clusters/proxy"]
    verbs: ["get", "create"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: stateshift-doctor
  labels:
    {{- include "stateshift.karmadaLabels" $ | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: stateshift-doctor
subjects:
  {{- toYaml . | nindent 2 }}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: stateshift-doctor
  namespace: {{ $ns }}
  labels:
    {{- include "stateshift.memberLabels" $ | nindent 4 }}
rules:
  - apiGroups: ["apps"]
    resources: ["daemonsets"]
    verbs: ["get"]
  - apiGroups: [""]
    resources: ["pods"]
    verbs: ["get", "list"]
  - apiGroups: [""]
    resources: ["pods/exec"]
    verbs: ["create"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: stateshift-doctor
  namespace: {{ $ns }}
  labels:
    {{- include "stateshift.memberLabels" $ | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: stateshift-doctor
subjects:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
