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
25-security.yaml: stateshift.karmada.security
30-members.yaml: stateshift.karmada.members
40-propagation.yaml: stateshift.karmada.propagation
50-interpreter-config.yaml: stateshift.karmada.interpreterConfig
{{- end -}}

{{/* Uninstall: Karmada's native interpretation first, the admission
     rules (the placement webhook would refuse Migrations once its pods
     are gone), then the member
     templates (Karmada removes them from the members), the CRDs (with
     every CheckpointPolicy, Migration and Checkpoint), the RBAC, the
     policy, the namespace. */}}
{{- define "stateshift.karmadaDeleteOrder" -}}
- 50-interpreter-config.yaml
- 25-security.yaml
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
# Checkpoints leave InterpretHealth to Karmada (healthy): it is asked at
# every status change of every member Checkpoint, with an Event each time,
# and only the Checkpoint's phase, which the control plane reads, says
# whether it failed.
apiVersion: config.karmada.io/v1alpha1
kind: ResourceInterpreterWebhookConfiguration
metadata:
  name: stateshift-interpreter
  labels:
    {{- include "stateshift.karmadaLabels" . | nindent 4 }}
webhooks:
{{- range $w := list (dict "name" "workloads.interpreter.stateshift.io" "ops" (list "InterpretReplica" "ReviseReplica" "Retain" "AggregateStatus" "InterpretStatus" "InterpretHealth" "InterpretDependency") "groups" (list "apps") "versions" (list "v1") "kinds" (list "StatefulSet" "Deployment"))
                     (dict "name" "checkpoints.interpreter.stateshift.io" "ops" (list "InterpretStatus" "AggregateStatus") "groups" (list "stateshift.io") "versions" (list "v1alpha1") "kinds" (list "Checkpoint")) }}
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
{{- if .Values.members.enabled }}
---
# The members' pod-restore webhook configuration is delivered by Karmada,
# and the webhook's process writes the member's completed restores into
# its restore-pending and restore-completed conditions: Karmada keeps those
# two expressions as the member shows them (without this it would put the
# delivered ones back on every sync), everything else as delivered. Every
# other MutatingWebhookConfiguration is left as Karmada treats it.
apiVersion: config.karmada.io/v1alpha1
kind: ResourceInterpreterCustomization
metadata:
  name: stateshift-pod-restore-conditions
  labels:
    {{- include "stateshift.karmadaLabels" . | nindent 4 }}
spec:
  target:
    apiVersion: admissionregistration.k8s.io/v1
    kind: MutatingWebhookConfiguration
  customizations:
    retention:
      luaScript: |
        function Retain(desiredObj, observedObj)
          if desiredObj.metadata.name ~= "stateshift-pod-restore" or desiredObj.webhooks == nil or observedObj.webhooks == nil then
            return desiredObj
          end
          local written = {}
          for _, w in ipairs(observedObj.webhooks) do
            for _, c in ipairs(w.matchConditions or {}) do
              if c.name == "restore-pending" or c.name == "restore-completed" then
                written[w.name .. "/" .. c.name] = c.expression
              end
            end
          end
          for _, w in ipairs(desiredObj.webhooks) do
            for _, c in ipairs(w.matchConditions or {}) do
              local kept = written[w.name .. "/" .. c.name]
              if kept ~= nil then
                c.expression = kept
              end
            end
          end
          return desiredObj
        end
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
    {{- $kinds := list "apiextensions.k8s.io/v1 CustomResourceDefinition" "v1 ServiceAccount" "v1 Service" "v1 Secret" "rbac.authorization.k8s.io/v1 ClusterRole" "rbac.authorization.k8s.io/v1 ClusterRoleBinding" "rbac.authorization.k8s.io/v1 Role" "rbac.authorization.k8s.io/v1 RoleBinding" "apps/v1 DaemonSet" "apps/v1 Deployment" "policy/v1 PodDisruptionBudget" "admissionregistration.k8s.io/v1 MutatingWebhookConfiguration" "v1 ConfigMap" "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy" "admissionregistration.k8s.io/v1 ValidatingAdmissionPolicyBinding" }}
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
{{- with trim (include "stateshift.karmada.memberOverrides" .) }}
---
{{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* members.clusterOverrides as one ClusterOverridePolicy per member part
     (a plaintext patch of one kind's paths would fail on another kind),
     each with one rule per entry. Paths follow templates/karmada/_members.tpl:
     container 0; volume and mount 0 are the checkpoints, 1 the journal, 2
     buildah's storage, 4 the kubelet CA. */}}
{{- define "stateshift.karmada.memberOverrides" -}}
{{- $ns := .Release.Namespace -}}
{{- $c0 := "/spec/template/spec/containers/0" -}}
{{- $agentRules := list -}}
{{- $podRestoreRules := list -}}
{{- $webhookRules := list -}}
{{- range $o := .Values.members.clusterOverrides -}}
{{- $env := list -}}
{{- if $o.apiServer -}}
{{- $hp := splitList ":" (urlParse $o.apiServer).host -}}
{{- $env = list (dict "name" "KUBERNETES_SERVICE_HOST" "value" (first $hp)) (dict "name" "KUBERNETES_SERVICE_PORT" "value" (ternary (last $hp) "443" (gt (len $hp) 1))) -}}
{{- end -}}
{{- $agent := list -}}
{{- range $e := $env }}{{- $agent = append $agent (dict "path" (printf "%s/env/-" $c0) "operator" "add" "value" $e) -}}{{- end -}}
{{- if $o.checkpointDir -}}
{{- $agent = concat $agent (list (dict "path" "/spec/template/spec/volumes/0/hostPath/path" "operator" "replace" "value" $o.checkpointDir) (dict "path" (printf "%s/volumeMounts/0/mountPath" $c0) "operator" "replace" "value" $o.checkpointDir) (dict "path" (printf "%s/args/-" $c0) "operator" "add" "value" (printf "--checkpoint-dir=%s" $o.checkpointDir))) -}}
{{- end -}}
{{- if $o.kubeletCA -}}
{{- $agent = concat $agent (list (dict "path" "/spec/template/spec/volumes/4/hostPath/path" "operator" "replace" "value" $o.kubeletCA) (dict "path" (printf "%s/volumeMounts/4/mountPath" $c0) "operator" "replace" "value" $o.kubeletCA) (dict "path" (printf "%s/args/-" $c0) "operator" "add" "value" (printf "--kubelet-ca=%s" $o.kubeletCA))) -}}
{{- end -}}
{{- if $o.journalHostPath }}{{- $agent = append $agent (dict "path" "/spec/template/spec/volumes/1/hostPath/path" "operator" "replace" "value" $o.journalHostPath) -}}{{- end -}}
{{- if $o.buildahStorageHostPath }}{{- $agent = append $agent (dict "path" "/spec/template/spec/volumes/2/hostPath/path" "operator" "replace" "value" $o.buildahStorageHostPath) -}}{{- end -}}
{{- range $arg := $o.agentArgs }}{{- $agent = append $agent (dict "path" (printf "%s/args/-" $c0) "operator" "add" "value" $arg) -}}{{- end -}}
{{- $target := dict "clusterNames" $o.clusterNames -}}
{{- if $agent }}{{- $agentRules = append $agentRules (dict "targetCluster" $target "overriders" (dict "plaintext" $agent)) -}}{{- end -}}
{{- $pr := list -}}
{{- range $e := $env }}{{- $pr = append $pr (dict "path" (printf "%s/env/-" $c0) "operator" "add" "value" $e) -}}{{- end -}}
{{- range $arg := $o.podRestoreArgs }}{{- $pr = append $pr (dict "path" (printf "%s/args/-" $c0) "operator" "add" "value" $arg) -}}{{- end -}}
{{- if $pr }}{{- $podRestoreRules = append $podRestoreRules (dict "targetCluster" $target "overriders" (dict "plaintext" $pr)) -}}{{- end -}}
{{- if $o.podRestoreURL -}}
{{- $wh := list (dict "path" "/webhooks/0/clientConfig/url" "operator" "replace" "value" $o.podRestoreURL) -}}
{{- if not $.Values.members.podRestore.url -}}
{{- $wh = list (dict "path" "/webhooks/0/clientConfig/service" "operator" "remove") (dict "path" "/webhooks/0/clientConfig/url" "operator" "add" "value" $o.podRestoreURL) -}}
{{- end -}}
{{- $webhookRules = append $webhookRules (dict "targetCluster" $target "overriders" (dict "plaintext" $wh)) -}}
{{- end -}}
{{- end -}}
{{- $policies := list
      (dict "name" "stateshift-members-agent" "rules" $agentRules "selector" (dict "apiVersion" "apps/v1" "kind" "DaemonSet" "namespace" $ns "name" "stateshift-checkpoint-agent"))
      (dict "name" "stateshift-members-pod-restore" "rules" $podRestoreRules "selector" (dict "apiVersion" "apps/v1" "kind" "Deployment" "namespace" $ns "name" "stateshift-pod-restore"))
      (dict "name" "stateshift-members-pod-restore-webhook" "rules" $webhookRules "selector" (dict "apiVersion" "admissionregistration.k8s.io/v1" "kind" "MutatingWebhookConfiguration" "name" "stateshift-pod-restore")) -}}
{{- range $p := $policies }}
{{- if $p.rules }}
---
apiVersion: policy.karmada.io/v1alpha1
kind: ClusterOverridePolicy
metadata:
  name: {{ $p.name }}
  labels:
    {{- include "stateshift.karmadaLabels" $ | nindent 4 }}
spec:
  resourceSelectors:
    - {{ toYaml $p.selector | nindent 6 | trim }}
  overrideRules:
    {{- toYaml $p.rules | nindent 4 }}
{{- end }}
{{- end }}
{{- end -}}
