{{/* Names. */}}
{{/* One release per Karmada: the cluster-scoped objects (CRDs, interpreter
     configuration, pod-restore webhook) are singletons, and code refers to
     some names (stateshift-pod-restore, stateshift-interpreter). */}}
{{- define "stateshift.fullname" -}}stateshift{{- end -}}

{{- define "stateshift.interpreterName" -}}{{ include "stateshift.fullname" . }}-interpreter-webhook{{- end -}}
{{- define "stateshift.controllerName" -}}{{ include "stateshift.fullname" . }}-migration-controller{{- end -}}
{{- define "stateshift.agentName" -}}{{ include "stateshift.fullname" . }}-checkpoint-agent{{- end -}}
{{- define "stateshift.podRestoreName" -}}{{ include "stateshift.fullname" . }}-pod-restore{{- end -}}
{{- define "stateshift.interpreterCertSecret" -}}{{ include "stateshift.interpreterName" . }}-certs{{- end -}}
{{- define "stateshift.podRestoreCertSecret" -}}{{ include "stateshift.podRestoreName" . }}-certs{{- end -}}
{{- define "stateshift.karmadaObjectsName" -}}{{ include "stateshift.fullname" . }}-karmada-objects{{- end -}}

{{- define "stateshift.labels" -}}
app.kubernetes.io/part-of: stateshift
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
{{- end -}}

{{/* Objects created in the Karmada API carry this label too: the
     pre-delete Job and the ClusterPropagationPolicy select by it. */}}
{{- define "stateshift.karmadaLabels" -}}
{{ include "stateshift.labels" . }}
stateshift.io/release: {{ .Release.Name }}
{{- end -}}

{{- define "stateshift.memberLabels" -}}
{{ include "stateshift.karmadaLabels" . }}
stateshift.io/deliver-to-members: "true"
{{- end -}}

{{- define "stateshift.tag" -}}{{ .Values.image.tag | default .Chart.AppVersion }}{{- end -}}
{{- define "stateshift.webhookImage" -}}{{ printf "%s/interpreter-webhook:%s" .Values.image.registry (include "stateshift.tag" .) }}{{- end -}}
{{- define "stateshift.agentImage" -}}{{ printf "%s/checkpoint-agent:%s" .Values.image.registry (include "stateshift.tag" .) }}{{- end -}}
{{- define "stateshift.kubectlImage" -}}{{ printf "%s/%s:%s" (.Values.karmada.job.image.registry | default .Values.image.registry) .Values.karmada.job.image.repository .Values.karmada.job.image.tag }}{{- end -}}

{{- define "stateshift.pullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The hardened container security context of every nonroot container. */}}
{{- define "stateshift.nonrootContainerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "stateshift.nonrootPodSecurity" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
# The certificate Secret's files get this group and g+r.
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* caBundle of the interpreter webhook (PEM), per certs.mode; cert-manager:
     filled in by the apply Job at run time. */}}
{{- define "stateshift.interpreterCABundle" -}}
{{- $certs := include "stateshift.certs" . | fromYaml -}}
{{- $certs.interpreter.caBundle -}}
{{- end -}}

{{- define "stateshift.validate" -}}
{{- if and (eq .Values.certs.mode "external") (not .Values.certs.external.caBundle) (eq .Values.karmada.apply "job") -}}
{{- fail "certs.mode=external needs certs.external.caBundle (PEM of the CA that signed the Secrets you made)" -}}
{{- end -}}
{{- if and .Values.interpreter.url (not (hasPrefix "https://" .Values.interpreter.url)) -}}
{{- fail (printf "interpreter.url %q must start with https://" .Values.interpreter.url) -}}
{{- end -}}
{{- if and .Values.security.migrationPlacementWebhook.enabled (not .Values.controller.enabled) -}}
{{- fail "security.migrationPlacementWebhook needs controller.enabled: the controller serves the placement check" -}}
{{- end -}}
{{- if and .Values.controller.enabled (lt (int .Values.controller.replicas) 1) -}}
{{- fail "controller.replicas must be at least 1 when controller.enabled" -}}
{{- end -}}
{{- if and .Values.interpreter.pdb.minAvailable (ge (int .Values.interpreter.pdb.minAvailable) (int .Values.interpreter.replicas)) -}}
{{- fail (printf "interpreter.pdb.minAvailable (%v) must be below interpreter.replicas (%v), or no node could ever be drained" .Values.interpreter.pdb.minAvailable .Values.interpreter.replicas) -}}
{{- end -}}
{{- end -}}

{{/* The controller's Karmada kubeconfig: its own identity's Secret, or the
     Jobs' (karmada.kubeconfigSecret) when none is given. */}}
{{- define "stateshift.controllerKubeconfigSecret" -}}{{ .Values.controller.karmadaIdentity.kubeconfigSecret.name | default .Values.karmada.kubeconfigSecret.name }}{{- end -}}
{{- define "stateshift.controllerKubeconfigKey" -}}{{ ternary .Values.controller.karmadaIdentity.kubeconfigSecret.key .Values.karmada.kubeconfigSecret.key (ne .Values.controller.karmadaIdentity.kubeconfigSecret.name "") }}{{- end -}}
