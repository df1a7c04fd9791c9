{{/* The pod of the Jobs that apply or delete stateshift's objects in the
     Karmada API with kubectl (busybox sh for the few steps around it).
     Input: dict root, action (apply|delete), wait ("host port" to wait for
     before applying: the webhook must answer before Karmada calls it),
     kubeconfig. */}}
{{- define "stateshift.karmadaJobPod" -}}
{{- $ := .root -}}
{{- $cm := eq $.Values.certs.mode "cert-manager" -}}
serviceAccountName: {{ include "stateshift.fullname" $ }}-karmada-apply
automountServiceAccountToken: false
restartPolicy: Never
{{- if $.Values.karmada.job.hostNetwork }}
hostNetwork: true
dnsPolicy: ClusterFirstWithHostNet
{{- end }}
{{- include "stateshift.pullSecrets" $ }}
securityContext:
  {{- include "stateshift.nonrootPodSecurity" $ | nindent 2 }}
containers:
  - name: kubectl
    image: {{ include "stateshift.kubectlImage" $ }}
    imagePullPolicy: {{ $.Values.image.pullPolicy }}
    env:
      # kubectl's cache; the root file system is read-only.
      - {name: HOME, value: /tmp}
    command: ["/bin/sh", "-ec"]
    args:
      - |
        k() { kubectl --kubeconfig={{ .kubeconfig }} --request-timeout=30s "$@"; }
        mkdir -p /tmp/objects && cp /objects/*.yaml /tmp/objects/
        {{- if eq .action "apply" }}
        {{- if .wait }}
        # Service endpoints are ready pods only. busybox nc has no -z: it
        # connects, sends nothing, and the TLS server closes.
        until timeout 5 nc -w 2 {{ .wait }} </dev/null >/dev/null 2>&1; do echo "waiting for the interpreter webhook ({{ .wait }})"; sleep 2; done
        {{- end }}
        {{- if $cm }}
        # Overlapping bundle: cert-manager's current CA first, then the CA
        # that was first in the Karmada API until now; unchanged while
        # cert-manager's CA is the first one already.
        old="$(k get resourceinterpreterwebhookconfiguration stateshift-interpreter -o jsonpath='{.webhooks[0].clientConfig.caBundle}' 2>/dev/null | base64 -d 2>/dev/null || true)"
        new="$(cat /certs/interpreter/ca.crt)"
        first="$(printf '%s\n' "$old" | awk '/BEGIN CERT/{n++} n==1{print} /END CERT/{if (n==1) exit}')"
        if [ -z "$first" ]; then bundle="$new"
        elif [ "$(printf '%s' "$first" | tr -d ' \n')" = "$(printf '%s' "$new" | tr -d ' \n')" ]; then bundle="$old"
        else bundle="$(printf '%s\n%s' "$new" "$first")"; fi
        sed -i "s|__CA_BUNDLE__|$(printf '%s\n' "$bundle" | base64 -w0)|g; s|__POD_RESTORE_TLS_CRT__|$(base64 -w0 < /certs/pod-restore/tls.crt)|g; s|__POD_RESTORE_TLS_KEY__|$(base64 -w0 < /certs/pod-restore/tls.key)|g" /tmp/objects/*.yaml
        {{- end }}
        k apply --server-side --force-conflicts --field-manager=stateshift-chart -f /tmp/objects/
        {{- else }}
        {{- range $file := include "stateshift.karmadaDeleteOrder" $ | fromYamlArray }}
        {{- if eq $file "00-namespace.yaml" }}
        # Last, and not waited for: nothing depends on its finalization.
        k delete --ignore-not-found --wait=false -f /tmp/objects/{{ $file }}
        {{- else }}
        if grep -q '^kind:' /tmp/objects/{{ $file }}; then k delete --ignore-not-found --wait=true --timeout=300s -f /tmp/objects/{{ $file }}; fi
        {{- end }}
        {{- end }}
        {{- end }}
    resources:
      {{- toYaml $.Values.karmada.job.resources | nindent 6 }}
    securityContext:
      {{- include "stateshift.nonrootContainerSecurity" $ | nindent 6 }}
    volumeMounts:
      - {name: objects, mountPath: /objects, readOnly: true}
      - {name: karmada-kubeconfig, mountPath: /etc/karmada/kubeconfig, readOnly: true}
      - {name: tmp, mountPath: /tmp}
      {{- if $cm }}
      - {name: interpreter-certs, mountPath: /certs/interpreter, readOnly: true}
      - {name: pod-restore-certs, mountPath: /certs/pod-restore, readOnly: true}
      {{- end }}
volumes:
  - name: objects
    secret:
      secretName: {{ include "stateshift.karmadaObjectsName" $ }}
      defaultMode: 0440
  - name: karmada-kubeconfig
    secret:
      secretName: {{ $.Values.karmada.kubeconfigSecret.name }}
      defaultMode: 0440
  - name: tmp
    emptyDir: {}
  {{- if $cm }}
  - name: interpreter-certs
    secret:
      secretName: {{ include "stateshift.interpreterCertSecret" $ }}
      defaultMode: 0440
  - name: pod-restore-certs
    secret:
      secretName: {{ include "stateshift.podRestoreCertSecret" $ }}
      defaultMode: 0440
  {{- end }}
{{- end -}}
