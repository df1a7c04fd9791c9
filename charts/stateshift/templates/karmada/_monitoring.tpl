{{/* Monitoring objects for every member, delivered like the agent: a
     PodMonitor for the checkpoint agents with a scraper identity of its
     own, and the agent alerts. The Karmada API needs the Prometheus
     Operator's CRDs to hold them, and the members to run them. */}}
{{- define "stateshift.karmada.memberMonitoring" -}}
{{- $m := .Values.monitoring -}}
{{- $ns := .Release.Namespace -}}
{{- if and $m.podMonitors.enabled (eq .Values.members.agent.metrics.mode "secure") }}
# The scraper's identity on each member: it may get /metrics and nothing
# else. Its token Secret is filled by each member's token controller.
apiVersion: v1
kind: ServiceAccount
metadata:
  name: stateshift-metrics-scraper
  namespace: {{ $ns }}
  labels:
    {{- include "stateshift.memberLabels" . | nindent 4 }}
---
apiVersion: v1
kind: Secret
metadata:
  name: stateshift-metrics-scraper-token
  namespace: {{ $ns }}
  labels:
    {{- include "stateshift.memberLabels" . | nindent 4 }}
  annotations:
    kubernetes.io/service-account.name: stateshift-metrics-scraper
type: kubernetes.io/service-account-token
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: stateshift-metrics-scraper
  labels:
    {{- include "stateshift.memberLabels" . | nindent 4 }}
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: stateshift-metrics-reader
subjects:
  - kind: ServiceAccount
    name: stateshift-metrics-scraper
    namespace: {{ $ns }}
---
# The agents serve HTTPS with a self-signed certificate on the nodes'
# addresses; the bearer token is what they check.
apiVersion: monitoring.coreos.com/v1
kind: PodMonitor
metadata:
  name: stateshift-checkpoint-agent
  namespace: {{ $ns }}
  labels:
    {{- include "stateshift.memberLabels" . | nindent 4 }}
    {{- with $m.podMonitors.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: stateshift-checkpoint-agent
  podMetricsEndpoints:
    - port: metrics
      path: /metrics
      scheme: https
      interval: {{ $m.podMonitors.interval }}
      tlsConfig:
        insecureSkipVerify: true
      authorization:
        type: Bearer
        credentials:
          name: stateshift-metrics-scraper-token
          key: token
{{- end }}
{{- if $m.prometheusRule.enabled }}
---
apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata:
  name: stateshift-checkpoint-agent
  namespace: {{ $ns }}
  labels:
    {{- include "stateshift.memberLabels" . | nindent 4 }}
    {{- with $m.prometheusRule.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  groups:
    {{- include "stateshift.rules.agent" . | nindent 4 }}
{{- end }}
{{- end -}}
