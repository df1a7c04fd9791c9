{{/* stateshift's admission rules and roles (docs/design-security.md):
     artifacts/security is their source, copied to files/security by
     `make artifacts`, so kubectl users and the chart apply the same rules.
     Each file is switched by security.*; the namespace is the release's.
     roles.yaml and checkpoint-admission.yaml hold in the Karmada API and on
     every member (delivered by the ClusterPropagationPolicy); the
     repository allowlist and the placement webhook only in the Karmada API,
     where CheckpointPolicies and Migrations are created. */}}
{{- define "stateshift.karmada.security" -}}
{{- $ns := .Release.Namespace -}}
{{- $s := .Values.security -}}
{{- $on := dict "roles.yaml" $s.roles.enabled "checkpoint-repositories.yaml" $s.repositoryAllowlist.enabled "checkpoint-admission.yaml" $s.checkpointAdmission.enabled "migration-placement-webhook.yaml" $s.migrationPlacementWebhook.enabled -}}
{{- $toMembers := dict "roles.yaml" true "checkpoint-admission.yaml" true -}}
{{- range $file := list "roles.yaml" "checkpoint-repositories.yaml" "checkpoint-admission.yaml" "migration-placement-webhook.yaml" }}
{{- if get $on $file }}
{{- $raw := $.Files.Get (printf "files/security/%s" $file) | replace "stateshift-system" $ns -}}
{{- range $doc := splitList "\n---\n" $raw }}
{{- $o := fromYaml $doc }}
{{- if and $o.kind (not (and (eq $o.kind "ConfigMap") (eq $o.metadata.name "stateshift-checkpoint-creators"))) }}
{{- $labels := merge (dict) ($o.metadata.labels | default dict) (include "stateshift.karmadaLabels" $ | fromYaml) -}}
{{- if get $toMembers $file }}{{- $labels = merge $labels (include "stateshift.memberLabels" $ | fromYaml) -}}{{- end -}}
{{- $_ := set $o.metadata "labels" $labels -}}
{{- /* The creators come from the values, written into the policy as CEL
     lists instead of the ConfigMap parameter the plain YAML uses: the API
     server watches a ConfigMap parameter with its shared informer and stops
     that informer when the policy is deleted, so after helm uninstall and
     install it never sees the new ConfigMap again and refuses every
     Checkpoint ("no params found") until it restarts. */ -}}
{{- $creators := eq $o.metadata.name "stateshift-checkpoint-creators" -}}
{{- if and $creators (eq $o.kind "ValidatingAdmissionPolicy") -}}
{{- $_ := unset $o.spec "paramKind" -}}
{{- $_ := set $o.spec "variables" (list (dict "name" "users" "expression" (toJson $s.checkpointAdmission.creators.users)) (dict "name" "groups" "expression" (toJson $s.checkpointAdmission.creators.groups)) (dict "name" "callerGroups" "expression" "request.userInfo.?groups.orValue([])")) -}}
{{- range $v := $o.spec.validations }}{{- $_ := set $v "messageExpression" `'a Checkpoint dumps the memory of pod ' + object.spec.podName + ' (its secrets, keys and tokens) like pods/exec reads it: ' + request.userInfo.username + ' may not create one or change its spec; an administrator lists who may in the values security.checkpointAdmission.creators of stateshift\'s chart, or use a CheckpointPolicy'` -}}{{- end -}}
{{- else if and $creators (eq $o.kind "ValidatingAdmissionPolicyBinding") -}}
{{- $_ := unset $o.spec "paramRef" -}}
{{- end -}}
{{- if eq $o.kind "ValidatingWebhookConfiguration" -}}
{{- range $w := $o.webhooks -}}
{{- $_ := set $w "clientConfig" (include "stateshift.placementClientConfig" $ | fromYaml) -}}
{{- end -}}
{{- end }}
---
{{ toYaml $o }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Where karmada-apiserver calls the controller's placement check:
     controller.url, or the controller Service's cluster DNS name (the
     API server would look a service reference up in the Karmada API,
     where the Service does not exist; Karmada's own chart configures
     karmada-webhook the same way). The interpreter's certificate covers
     both; so does its caBundle. */}}
{{- define "stateshift.placementClientConfig" -}}
{{- $certs := include "stateshift.certs" . | fromYaml -}}
{{- $cc := dict "url" (.Values.controller.url | default (printf "https://%s.%s.svc:443/validate-migration" (include "stateshift.controllerName" .) .Release.Namespace)) -}}
{{- if eq .Values.certs.mode "cert-manager" -}}
{{- $_ := set $cc "caBundle" "__CA_BUNDLE__" -}}
{{- else if $certs.caBundle -}}
{{- $_ := set $cc "caBundle" ($certs.caBundle | b64enc) -}}
{{- end -}}
{{- toYaml $cc -}}
{{- end -}}
