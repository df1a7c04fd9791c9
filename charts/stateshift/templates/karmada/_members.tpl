{{/* What every member cluster runs: resource templates in the Karmada API,
     delivered by the ClusterPropagationPolicy. Mirrors artifacts/agent. */}}
{{- define "stateshift.karmada.members" -}}
{{- if .Values.members.enabled }}
{{- $ns := .Release.Namespace -}}
{{- $certs := include "stateshift.certs" . | fromYaml -}}
{{- $a := .Values.members.agent -}}
{{- $p := .Values.members.podRestore -}}
# The checkpoint agent: one per node of every member cluster. The kubelet
# writes checkpoint archives root-owned 0600, so the agent runs as root
# with the capabilities buildah's overlay storage needs.
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: stateshift-checkpoint-agent
  namespace: {{ $ns }}
  labels:
    app.kubernetes.io/name: stateshift-checkpoint-agent
    {{- include "stateshift.memberLabels" . | nindent 4 }}
spec:
  selector:
    matchLabels:
      app.kubernetes.io/name: stateshift-checkpoint-agent
  updateStrategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 10%
  template:
    metadata:
      labels:
        app.kubernetes.io/name: stateshift-checkpoint-agent
        app.kubernetes.io/part-of: stateshift
    spec:
      serviceAccountName: stateshift-checkpoint-agent
      # The kubelet listens on the node's address; host networking reaches
      # it the same way on every CNI.
      hostNetwork: true
      dnsPolicy: ClusterFirstWithHostNet
      priorityClassName: system-node-critical
      {{- include "stateshift.pullSecrets" . | nindent 6 }}
      {{- with $a.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: agent
          image: {{ include "stateshift.agentImage" . }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          args:
            - --node-name=$(NODE_NAME)
            - --namespace=$(POD_NAMESPACE)
            - --checkpoint-dir={{ $a.checkpointDir }}
            - --kubelet-ca={{ $a.kubeletCA }}
            - --builders={{ join "," $a.builders }}
            - --buildah-root=/home/nonroot/.local/share/containers/storage
            - --buildah-runroot=/run/stateshift/buildah
            - --buildah-storage-driver={{ $a.storageDriver }}
            - --work-dir=/home/nonroot/.local/share/containers/stateshift-work
            - --max-concurrent={{ $a.maxConcurrent }}
            - --metrics-bind-address=127.0.0.1:9465
            - --health-probe-bind-address=:9466
            {{- with $a.extraArgs }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          env:
            - name: NODE_NAME
              valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
            - name: POD_NAMESPACE
              valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
          ports:
            - {name: healthz, containerPort: 9466}
          livenessProbe:
            httpGet: {path: /healthz, port: healthz}
            periodSeconds: 20
          readinessProbe:
            httpGet: {path: /readyz, port: healthz}
            periodSeconds: 10
          resources:
            {{- toYaml $a.resources | nindent 12 }}
          securityContext:
            runAsUser: 0
            runAsNonRoot: false
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
              add: ["CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "SETUID", "SETGID", "SYS_ADMIN"]
            seccompProfile:
              type: Unconfined
          volumeMounts:
            - {name: checkpoints, mountPath: {{ $a.checkpointDir }}}
            - {name: container-storage, mountPath: /var/lib/containers, readOnly: true}
            - {name: user-storage, mountPath: /home/nonroot/.local/share/containers}
            - {name: containers-config, mountPath: /etc/containers, readOnly: true}
            - {name: run-containers, mountPath: /run/containers, readOnly: true}
            - {name: run-stateshift, mountPath: /run/stateshift}
            - {name: kubelet-ca, mountPath: {{ $a.kubeletCA }}, readOnly: true}
            - {name: tmp, mountPath: /tmp}
      volumes:
        - name: checkpoints
          hostPath: {path: {{ $a.checkpointDir }}, type: DirectoryOrCreate}
        - name: container-storage
          hostPath: {path: /var/lib/containers, type: DirectoryOrCreate}
        - name: user-storage
          hostPath: {path: {{ $a.buildahStorageHostPath }}, type: DirectoryOrCreate}
        - name: containers-config
          hostPath: {path: /etc/containers, type: DirectoryOrCreate}
        - name: run-containers
          hostPath: {path: /run/containers, type: DirectoryOrCreate}
        - name: run-stateshift
          emptyDir: {medium: Memory}
        - name: kubelet-ca
          hostPath: {path: {{ $a.kubeletCA }}, type: File}
        - name: tmp
          emptyDir: {}
---
{{- if ne .Values.certs.mode "external" }}
# The pod-restore webhook's serving certificate, delivered with it.
apiVersion: v1
kind: Secret
metadata:
  name: stateshift-pod-restore-certs
  namespace: {{ $ns }}
  labels:
    {{- include "stateshift.memberLabels" . | nindent 4 }}
type: kubernetes.io/tls
data:
  {{- if eq .Values.certs.mode "cert-manager" }}
  tls.crt: __POD_RESTORE_TLS_CRT__
  tls.key: __POD_RESTORE_TLS_KEY__
  {{- else }}
  tls.crt: {{ $certs.podRestore.crt | b64enc }}
  tls.key: {{ $certs.podRestore.key | b64enc }}
  {{- end }}
---
{{- end }}
# Mutates pods created from a restored template so the runtime restores
# them from their checkpoint image (cmd/checkpoint-agent pod-restore-webhook).
apiVersion: apps/v1
kind: Deployment
metadata:
  name: stateshift-pod-restore
  namespace: {{ $ns }}
  labels:
    app.kubernetes.io/name: stateshift-pod-restore
    {{- include "stateshift.memberLabels" . | nindent 4 }}
spec:
  replicas: {{ $p.replicas }}
  selector:
    matchLabels:
      app.kubernetes.io/name: stateshift-pod-restore
  template:
    metadata:
      labels:
        app.kubernetes.io/name: stateshift-pod-restore
        app.kubernetes.io/part-of: stateshift
    spec:
      serviceAccountName: stateshift-pod-restore
      {{- if $p.hostNetwork }}
      hostNetwork: true
      dnsPolicy: ClusterFirstWithHostNet
      {{- end }}
      {{- include "stateshift.pullSecrets" . | nindent 6 }}
      securityContext:
        {{- include "stateshift.nonrootPodSecurity" . | nindent 8 }}
      topologySpreadConstraints:
        - maxSkew: 1
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              app.kubernetes.io/name: stateshift-pod-restore
      containers:
        - name: pod-restore
          image: {{ include "stateshift.agentImage" . }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          args:
            - pod-restore-webhook
            - --bind-address={{ $p.bindAddress }}
            - --secure-port={{ $p.port }}
            - --cert-dir=/var/run/stateshift/serving-certs
            - --tls-min-version=1.2
            - --metrics-bind-address=:{{ $p.metricsPort }}
            - --health-probe-bind-address=:{{ $p.probePort }}
          ports:
            - {name: https, containerPort: {{ $p.port }}}
            - {name: metrics, containerPort: {{ $p.metricsPort }}}
            - {name: probes, containerPort: {{ $p.probePort }}}
          readinessProbe:
            httpGet: {path: /readyz, port: probes}
            periodSeconds: 5
          livenessProbe:
            httpGet: {path: /healthz, port: probes}
            periodSeconds: 10
          resources:
            {{- toYaml $p.resources | nindent 12 }}
          securityContext:
            {{- include "stateshift.nonrootContainerSecurity" . | nindent 12 }}
          volumeMounts:
            - name: serving-certs
              mountPath: /var/run/stateshift/serving-certs
              readOnly: true
      volumes:
        - name: serving-certs
          secret:
            secretName: stateshift-pod-restore-certs
            defaultMode: 0440
---
apiVersion: v1
kind: Service
metadata:
  name: stateshift-pod-restore
  namespace: {{ $ns }}
  labels:
    app.kubernetes.io/name: stateshift-pod-restore
    {{- include "stateshift.memberLabels" . | nindent 4 }}
spec:
  selector:
    app.kubernetes.io/name: stateshift-pod-restore
  ports:
    - {name: https, port: 443, targetPort: https}
{{- if gt (int $p.replicas) 1 }}
---
# With one replica a PDB would block every drain.
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: stateshift-pod-restore
  namespace: {{ $ns }}
  labels:
    app.kubernetes.io/name: stateshift-pod-restore
    {{- include "stateshift.memberLabels" . | nindent 4 }}
spec:
  minAvailable: 1
  selector:
    matchLabels:
      app.kubernetes.io/name: stateshift-pod-restore
{{- end }}
---
# matchConditions: the API server calls the webhook only for pods created
# from a template stateshift rewrote; every other pod is admitted without a
# call. failurePolicy Fail for those pods: when the webhook is down a
# restored StatefulSet's pods wait (the controller retries) instead of
# starting from another pod's checkpoint. Delete this configuration to let
# them start from the template's images.
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: stateshift-pod-restore
  labels:
    {{- include "stateshift.memberLabels" . | nindent 4 }}
webhooks:
  - name: pods.restore.stateshift.io
    admissionReviewVersions: ["v1"]
    sideEffects: None
    failurePolicy: Fail
    reinvocationPolicy: Never
    timeoutSeconds: {{ $p.timeoutSeconds }}
    rules:
      - operations: ["CREATE"]
        apiGroups: [""]
        apiVersions: ["v1"]
        resources: ["pods"]
        scope: Namespaced
    namespaceSelector:
      matchExpressions:
        - {key: kubernetes.io/metadata.name, operator: NotIn, values: ["kube-system", {{ $ns | quote }}]}
    matchConditions:
      - name: restored-template
        expression: "has(object.metadata.annotations) && 'stateshift.io/restored-from' in object.metadata.annotations"
    clientConfig:
      {{- if $p.url }}
      url: {{ $p.url }}
      {{- else }}
      service: {namespace: {{ $ns }}, name: stateshift-pod-restore, path: /mutate-pods, port: 443}
      {{- end }}
      {{- if eq .Values.certs.mode "cert-manager" }}
      caBundle: __CA_BUNDLE__
      {{- else if $certs.caBundle }}
      caBundle: {{ $certs.caBundle | b64enc }}
      {{- else }}
      # caBundle: filled by hack/apply-interpreter-config.sh
      {{- end }}
{{- end }}
{{- end -}}
