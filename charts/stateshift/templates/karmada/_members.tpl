{{/* What every member cluster runs: resource templates in the Karmada API,
     delivered by the ClusterPropagationPolicy. Mirrors artifacts/agent. */}}
{{- define "stateshift.karmada.members" -}}
{{- if .Values.members.enabled }}
{{- $ns := .Release.Namespace -}}
{{- $certs := include "stateshift.certs" . | fromYaml -}}
{{- $a := .Values.members.agent -}}
{{- $p := .Values.members.podRestore -}}
# The checkpoint agent: one per node of every member cluster.
# A checkpoint is a memory dump, so the volumes are chosen for what they may
# hold (docs/design-security.md):
# - checkpoints: the kubelet's archives; the agent deletes each one after its
#   push, and at start sweeps those a killed agent left (--journal-dir).
# - journal: names and paths of archives of unfinished checkpoints (no
#   memory, no credentials) on the node's disk, because the archives outlive
#   a node reboot too.
# - run-stateshift: memory-backed (emptyDir medium Memory): the work folder
#   (--work-dir) holds the registry auth files, extracted config.dump files
#   and buildah's HOME; these small secrets never reach a disk. Its use
#   counts against the container's memory limit, which is why buildah does
#   not stage layers here.
# - user-storage: buildah's own image storage and staging folder
#   (--buildah-tmp-dir): buildah unpacks and copies the archive there during
#   a build; both are removed after each build and swept at start. The
#   native builder streams the archive and writes no copy.
# No node credentials are mounted: not /run/containers (root's auth.json),
# not /var/lib/containers (the node's images) nor /etc/containers (its
# registries configuration); every builder gets an explicit auth file,
# empty when the Checkpoint names no Secret.
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
    # No maxSurge: the agent's start sweep assumes it is the node's only
    # agent (a second one would delete the first one's archives mid-push).
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
      {{- with $a.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      {{- include "stateshift.pullSecrets" . | nindent 6 }}
      {{- with $a.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
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
            - --work-dir=/run/stateshift/work
            - --buildah-tmp-dir=/home/nonroot/.local/share/containers/stateshift-tmp
            - --journal-dir=/var/lib/stateshift/journal
            - --kubelet-timeout=4m
            - --push-timeout=30m
            - --verify-timeout=2m
            - --max-concurrent={{ $a.maxConcurrent }}
            - --kube-api-qps={{ $a.kubeAPIQPS }}
            - --kube-api-burst={{ $a.kubeAPIBurst }}
            {{- if eq $a.metrics.mode "secure" }}
            # HTTPS for callers allowed `get /metrics` (TokenReview and
            # SubjectAccessReview by the member's API server).
            # The pod's address is the node's (host network): only that
            # address, not every address of the node.
            - --metrics-bind-address=$(POD_IP):{{ $a.metrics.port }}
            - --metrics-secure
            {{- else }}
            - --metrics-bind-address=127.0.0.1:{{ $a.metrics.port }}
            {{- end }}
            - --health-probe-bind-address=$(POD_IP):{{ $a.probePort }}
            {{- with $a.extraArgs }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          env:
            - name: NODE_NAME
              valueFrom: {fieldRef: {fieldPath: spec.nodeName}}
            - name: POD_NAMESPACE
              valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
            - name: POD_IP
              valueFrom: {fieldRef: {fieldPath: status.podIP}}
          ports:
            - {name: healthz, containerPort: {{ $a.probePort }}}
            {{- if eq $a.metrics.mode "secure" }}
            - {name: metrics, containerPort: {{ $a.metrics.port }}}
            {{- end }}
          livenessProbe:
            httpGet: {path: /healthz, port: healthz}
            periodSeconds: 20
          readinessProbe:
            httpGet: {path: /readyz, port: healthz}
            periodSeconds: 10
          resources:
            {{- toYaml $a.resources | nindent 12 }}
          securityContext:
            # The kubelet writes archives root-owned 0600 in a 0700 folder,
            # so the agent reads and deletes them as root. buildah's overlay
            # storage needs mount (SYS_ADMIN); with --builders=native or
            # --buildah-storage-driver=vfs, SYS_ADMIN can be dropped.
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
            - {name: journal, mountPath: /var/lib/stateshift/journal}
            - {name: user-storage, mountPath: /home/nonroot/.local/share/containers}
            - {name: run-stateshift, mountPath: /run/stateshift}
            - {name: kubelet-ca, mountPath: {{ $a.kubeletCA }}, readOnly: true}
            - {name: tmp, mountPath: /tmp}
      volumes:
        - name: checkpoints
          hostPath: {path: {{ $a.checkpointDir }}, type: DirectoryOrCreate}
        - name: journal
          hostPath: {path: /var/lib/stateshift/journal, type: DirectoryOrCreate}
        - name: user-storage
          hostPath: {path: {{ $a.buildahStorageHostPath }}, type: DirectoryOrCreate}
        - name: run-stateshift
          # Memory-backed: auth files and staging files never reach a disk.
          emptyDir: {medium: Memory, sizeLimit: 64Mi}
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
  {{- if $p.hostNetwork }}
  # A new pod cannot bind the port beside the old one on its node: replace
  # one pod at a time (restored pods wait meanwhile: failurePolicy Fail).
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxUnavailable: 1, maxSurge: 0}
  {{- end }}
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
      {{- with $p.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $p.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
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
            # Plain HTTP: loopback only, never on the pod network.
            - --metrics-bind-address=127.0.0.1:{{ $p.metricsPort }}
            - --health-probe-bind-address=$(POD_IP):{{ $p.probePort }}
            {{- if $p.registrySecret }}
            # Reads the manifests of the checkpoint images a pod would
            # restore and refuses images taken in another namespace.
            - --registry-auth-file=/var/run/stateshift/registry/.dockerconfigjson
            {{- end }}
            {{- with $p.extraArgs }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          env:
            # bindAddress may be "$(POD_IP)": with the host network, the
            # node's address and no other.
            - name: POD_IP
              valueFrom: {fieldRef: {fieldPath: status.podIP}}
          ports:
            - {name: https, containerPort: {{ $p.port }}}
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
            {{- if $p.registrySecret }}
            - name: registry-credentials
              mountPath: /var/run/stateshift/registry
              readOnly: true
            {{- end }}
      volumes:
        {{- if $p.registrySecret }}
        # Read access to the checkpoint repositories (the Secret the
        # CheckpointPolicies name; a read-only robot account is enough).
        - name: registry-credentials
          secret:
            secretName: {{ $p.registrySecret }}
            optional: true
            defaultMode: 0440
        {{- end }}
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
# call. Two entries for those pods, told apart by the member's completed
# restores, which the webhook's process writes into the restore-pending
# and restore-completed conditions (--webhook-configuration):
# - a pending restore: failurePolicy Fail. When the webhook is down the
#   pod waits (its controller retries) instead of starting without its
#   checkpoint;
# - a completed restore: failurePolicy Ignore. The webhook only records why
#   the pod starts cold; without it the pod starts from the template, which
#   runs the workload's own images. A restored workload needs the webhook
#   only until its restore completed.
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata:
  name: stateshift-pod-restore
  labels:
    {{- include "stateshift.memberLabels" . | nindent 4 }}
webhooks:
{{- range $entry := list (dict "name" "pods.restore.stateshift.io" "failurePolicy" "Fail" "condition" "restore-pending" "expression" "!has(object.metadata.annotations) || !('stateshift.io/restored-from' in object.metadata.annotations) || !((request.namespace + '/' + object.metadata.annotations['stateshift.io/restored-from']) in [])") (dict "name" "completed.pods.restore.stateshift.io" "failurePolicy" "Ignore" "condition" "restore-completed" "expression" "has(object.metadata.annotations) && 'stateshift.io/restored-from' in object.metadata.annotations && (request.namespace + '/' + object.metadata.annotations['stateshift.io/restored-from']) in []") }}
  - name: {{ $entry.name }}
    admissionReviewVersions: ["v1"]
    sideEffects: None
    failurePolicy: {{ $entry.failurePolicy }}
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
      # Written by the webhook's process (pkg/podrestore ScopeReconciler).
      - name: {{ $entry.condition }}
        expression: {{ $entry.expression | quote }}
    clientConfig:
      {{- if $p.url }}
      url: {{ $p.url }}
      {{- else }}
      service: {namespace: {{ $ns }}, name: stateshift-pod-restore, path: /mutate-pods, port: 443}
      {{- end }}
      {{- if eq $.Values.certs.mode "cert-manager" }}
      caBundle: __CA_BUNDLE__
      {{- else if $certs.caBundle }}
      caBundle: {{ $certs.caBundle | b64enc }}
      {{- else }}
      # caBundle: filled by hack/apply-interpreter-config.sh
      {{- end }}
{{- end }}
{{- with trim (include "stateshift.karmada.memberMonitoring" .) }}
---
{{ . }}
{{- end }}
{{- end }}
{{- end -}}
