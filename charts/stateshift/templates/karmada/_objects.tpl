{{/*
The objects stateshift keeps in the Karmada API, one named template per
file of the apply Job (applied in file order, deleted in the order of
stateshift.karmadaDeleteOrder). Objects labeled
stateshift.io/deliver-to-members are resource templates that the
ClusterPropagationPolicy delivers to every member cluster.
*/}}

{{- define "stateshift.karmadaFiles" -}}
00-namespace.yaml: stateshift.karmada.namespace
10-crds.yaml: stateshift.karmada.crds
20-rbac.yaml: stateshift.karmada.rbac
30-members.yaml: stateshift.karmada.members
40-propagation.yaml: stateshift.karmada.propagation
50-interpreter-config.yaml: stateshift.karmada.interpreterConfig
{{- end -}}

{{/* Uninstall: Karmada's native interpretation first, then the member
     templates (Karmada removes them from the members), the CRDs (with
     every CheckpointPolicy, Migration and Checkpoint), the RBAC, the
     policy, the namespace. */}}
{{- define "stateshift.karmadaDeleteOrder" -}}
- 50-interpreter-config.yaml
- 30-members.yaml
- 10-crds.yaml
- 20-rbac.yaml
- 40-propagation.yaml
- 00-namespace.yaml
{{- end -}}

{{- define "stateshift.karmada.namespace" -}}
apiVersion: v1
kind: Namespace
metadata:
  name: {{ .Release.Namespace }}
  labels:
    {{- include "stateshift.karmadaLabels" . | nindent 4 }}
{{- end -}}

{{- define "stateshift.karmada.crds" -}}
{{- range $path, $_ := .Files.Glob "files/crds/*.yaml" }}
{{- $crd := $.Files.Get $path | fromYaml }}
{{- $labels := include "stateshift.karmadaLabels" $ | fromYaml }}
{{- if eq $crd.metadata.name "checkpoints.stateshift.io" }}
{{- $labels = include "stateshift.memberLabels" $ | fromYaml }}
{{- end }}
{{- $_ := set $crd.metadata "labels" $labels }}
---
{{ toYaml $crd }}
{{- end }}
{{- end -}}

{{- define "stateshift.karmada.interpreterConfig" -}}
{{- $name := include "stateshift.interpreterName" . -}}
{{- $certs := include "stateshift.certs" . | fromYaml -}}
{{- $bundle := "__CA_BUNDLE__" -}}
{{- if ne .Values.certs.mode "cert-manager" }}{{- $bundle = $certs.caBundle | b64enc -}}{{- end -}}
# Tells Karmada to ask stateshift's interpreter for StatefulSets,
# Deployments and Checkpoints. Karmada runs only the first interpreter that
# claims an operation, so the workload webhook delegates every operation to
# Karmada's native code and adds only migration state (see pkg/interpreter).
apiVersion: config.karmada.io/v1alpha1
kind: ResourceInterpreterWebhookConfiguration
metadata:
  name: stateshift-interpreter
  labels:
    {{- include "stateshift.karmadaLabels" . | nindent 4 }}
webhooks:
{{- range $w := list (dict "name" "workloads.interpreter.stateshift.io" "ops" (list "InterpretReplica" "ReviseReplica" "Retain" "AggregateStatus" "InterpretStatus" "InterpretHealth" "InterpretDependency") "groups" (list "apps") "versions" (list "v1") "kinds" (list "StatefulSet" "Deployment"))
                     (dict "name" "checkpoints.interpreter.stateshift.io" "ops" (list "InterpretStatus" "AggregateStatus" "InterpretHealth") "groups" (list "stateshift.io") "versions" (list "v1alpha1") "kinds" (list "Checkpoint")) }}
  - name: {{ $w.name }}
    rules:
      - operations: {{ toJson $w.ops }}
        apiGroups: {{ toJson $w.groups }}
        apiVersions: {{ toJson $w.versions }}
        kinds: {{ toJson $w.kinds }}
    clientConfig:
      {{- if $.Values.interpreter.url }}
      url: {{ $.Values.interpreter.url }}
      {{- else }}
      service: {namespace: {{ $.Release.Namespace }}, name: {{ $name }}, path: /interpreter, port: 443}
      {{- end }}
      {{- if $bundle }}
      caBundle: {{ $bundle }}
      {{- else }}
      # caBundle: filled by hack/apply-interpreter-config.sh
      {{- end }}
    interpreterContextVersions: ["v1alpha1"]
    timeoutSeconds: {{ $.Values.interpreter.timeoutSeconds }}
{{- end }}
{{- end -}}

{{- define "stateshift.karmada.propagation" -}}
{{- if .Values.members.enabled }}
# Delivers the member parts to every member cluster (or those
# members.clusterAffinity selects), including clusters that join later.
apiVersion: policy.karmada.io/v1alpha1
kind: ClusterPropagationPolicy
metadata:
  name: stateshift-members
  labels:
    {{- include "stateshift.karmadaLabels" . | nindent 4 }}
spec:
  resourceSelectors:
    {{- $kinds := list "apiextensions.k8s.io/v1 CustomResourceDefinition" "v1 ServiceAccount" "v1 Service" "v1 Secret" "rbac.authorization.k8s.io/v1 ClusterRole" "rbac.authorization.k8s.io/v1 ClusterRoleBinding" "rbac.authorization.k8s.io/v1 Role" "rbac.authorization.k8s.io/v1 RoleBinding" "apps/v1 DaemonSet" "apps/v1 Deployment" "policy/v1 PodDisruptionBudget" "admissionregistration.k8s.io/v1 MutatingWebhookConfiguration" }}
    {{- if .Values.monitoring.podMonitors.enabled }}{{ $kinds = append $kinds "monitoring.coreos.com/v1 PodMonitor" }}{{ end }}
    {{- if .Values.monitoring.prometheusRule.enabled }}{{ $kinds = append $kinds "monitoring.coreos.com/v1 PrometheusRule" }}{{ end }}
    {{- range $kind := $kinds }}
    {{- $f := splitList " " $kind }}
    - apiVersion: {{ index $f 0 }}
      kind: {{ index $f 1 }}
      labelSelector:
        matchLabels:
          stateshift.io/deliver-to-members: "true"
          stateshift.io/release: {{ $.Release.Name }}
    {{- end }}
    {{- range .Values.members.propagateSecrets }}
    - apiVersion: v1
      kind: Secret
      namespace: {{ $.Release.Namespace }}
      name: {{ . }}
    {{- end }}
  placement:
    {{- if .Values.members.clusterAffinity }}
    clusterAffinity:
      {{- toYaml .Values.members.clusterAffinity | nindent 6 }}
    {{- end }}
    replicaScheduling:
      replicaSchedulingType: Duplicated
{{- end }}
{{- end -}}
