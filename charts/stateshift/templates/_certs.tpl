{{/*
stateshift.certs: the certificates of one render, computed once and kept in
.Values.__certs (a template called twice would otherwise make two CAs).
Returns YAML:
  caBundle:          PEM, every CA the webhooks' clients must trust now
  interpreter:       {crt, key, notAfter, caFingerprint, sans}   (PEM; self mode)
  podRestore:        {crt, key, notAfter, caFingerprint, sans}
  state:             the CA state Secret's data (self mode)

certs.mode=self rotates with an overlapping CA bundle, one step per render
(install or upgrade), with the state in the host Secret <fullname>-ca:
  1. a pending next CA (added to the bundle by the previous upgrade, so
     every client trusts it by now) is promoted: it signs from now on, and
     the old CA stays in this release's bundle for pods that still serve a
     certificate it signed;
  2. a CA within caRenewBeforeDays of its end gets a successor: it only
     enters the bundle now, it signs from the next upgrade on;
  3. a serving certificate is reissued when its CA or the names it must
     cover changed or it is within servingRenewBeforeDays of its end, else
     kept as it is.
`helm template` (no cluster to look up) makes a new CA each time.
*/}}
{{- define "stateshift.certs" -}}
{{- if not (hasKey .Values "__certs") -}}
{{- $_ := set .Values "__certs" (include "stateshift.computeCerts" . | fromYaml) -}}
{{- end -}}
{{- toYaml (get .Values "__certs") -}}
{{- end -}}

{{- define "stateshift.computeCerts" -}}
{{- $ns := .Release.Namespace -}}
{{- $mode := .Values.certs.mode -}}
{{- $iname := include "stateshift.interpreterName" . -}}
{{- $pname := include "stateshift.podRestoreName" . -}}
{{- $cname := include "stateshift.controllerName" . -}}
{{- /* The controller serves the placement webhook with the interpreter's certificate. */ -}}
{{- $ihosts := list $iname (printf "%s.%s" $iname $ns) (printf "%s.%s.svc" $iname $ns) (printf "%s.%s.svc.cluster.local" $iname $ns) "localhost" $cname (printf "%s.%s" $cname $ns) (printf "%s.%s.svc" $cname $ns) (printf "%s.%s.svc.cluster.local" $cname $ns) -}}
{{- $phosts := list $pname (printf "%s.%s" $pname $ns) (printf "%s.%s.svc" $pname $ns) (printf "%s.%s.svc.cluster.local" $pname $ns) -}}
{{- /* Whatever host a webhook URL names must be in its certificate. */ -}}
{{- $sans := dict "interpreter" (dict "dns" $ihosts "ips" (list "127.0.0.1")) "podRestore" (dict "dns" $phosts "ips" (list "127.0.0.1")) -}}
{{- $purls := list .Values.members.podRestore.url -}}
{{- range .Values.members.clusterOverrides }}{{- $purls = append $purls (.podRestoreURL | default "") -}}{{- end -}}
{{- range $name, $urls := dict "interpreter" (list .Values.interpreter.url .Values.controller.url) "podRestore" $purls -}}
{{- $s := get $sans $name -}}
{{- range $u := $urls }}{{- if $u -}}
{{- $host := first (splitList ":" (urlParse $u).host) -}}
{{- if regexMatch "^[0-9.]+$" $host }}{{- $_ := set $s "ips" (append $s.ips $host | uniq) -}}
{{- else }}{{- $_ := set $s "dns" (append $s.dns $host | uniq) -}}{{- end -}}
{{- end }}{{- end -}}
{{- end -}}
{{- if eq $mode "self" -}}
{{- $day := 86400 -}}
{{- $now := now | unixEpoch | int64 -}}
{{- $cfg := .Values.certs.self -}}
{{- $stateSecret := lookup "v1" "Secret" $ns (printf "%s-ca" (include "stateshift.fullname" .)) -}}
{{- $state := dict -}}
{{- if $stateSecret }}{{- $state = $stateSecret.data | default dict -}}{{- end -}}
{{- $cur := dict -}}
{{- $curNotAfter := 0 -}}
{{- if hasKey $state "ca.crt" -}}
{{- $cur = buildCustomCert (get $state "ca.crt") (get $state "ca.key") -}}
{{- $curNotAfter = get $state "ca.not-after" | b64dec | int64 -}}
{{- else -}}
{{- $cur = genCA "stateshift-ca" (int $cfg.caValidityDays) -}}
{{- $curNotAfter = add $now (mul $day (int $cfg.caValidityDays)) -}}
{{- end -}}
{{- $old := "" -}}
{{- $next := dict -}}
{{- $nextNotAfter := 0 -}}
{{- if hasKey $state "next-ca.crt" -}}
{{- $old = $cur.Cert -}}
{{- $cur = buildCustomCert (get $state "next-ca.crt") (get $state "next-ca.key") -}}
{{- $curNotAfter = get $state "next-ca.not-after" | b64dec | int64 -}}
{{- end -}}
{{- if lt (sub $curNotAfter $now) (mul $day (int $cfg.caRenewBeforeDays)) -}}
{{- $next = genCA "stateshift-ca" (int $cfg.caValidityDays) -}}
{{- $nextNotAfter = add $now (mul $day (int $cfg.caValidityDays)) -}}
{{- end -}}
{{- $fp := sha256sum $cur.Cert -}}
{{- $bundle := $cur.Cert -}}
{{- if $next.Cert }}{{- $bundle = printf "%s\n%s" $bundle $next.Cert -}}{{- end -}}
{{- if $old }}{{- $bundle = printf "%s\n%s" $bundle $old -}}{{- end -}}
{{- $serving := dict -}}
{{- $live := dict -}}
{{- $secret := lookup "v1" "Secret" $ns (include "stateshift.interpreterCertSecret" .) -}}
{{- if and $secret $secret.metadata.annotations -}}
{{- $_ := set $live "interpreter" (dict "crt" (get $secret.data "tls.crt" | b64dec) "key" (get $secret.data "tls.key" | b64dec) "notAfter" (get $secret.metadata.annotations "stateshift.io/not-after" | default "0" | int64) "caFingerprint" (get $secret.metadata.annotations "stateshift.io/ca-fingerprint") "sans" (get $secret.metadata.annotations "stateshift.io/sans" | default "")) -}}
{{- end -}}
{{- if hasKey $state "pod-restore-tls.crt" -}}
{{- $_ := set $live "podRestore" (dict "crt" (get $state "pod-restore-tls.crt" | b64dec) "key" (get $state "pod-restore-tls.key" | b64dec) "notAfter" (get $state "pod-restore.not-after" | b64dec | int64) "caFingerprint" (get $state "pod-restore.ca-fingerprint" | b64dec) "sans" (get $state "pod-restore.sans" | default "" | b64dec)) -}}
{{- end -}}
{{- range $name, $san := $sans -}}
{{- $have := get $live $name -}}
{{- if and $have (eq $have.caFingerprint $fp) (eq ($have.sans | default "") (toJson $san)) (gt (sub (int64 $have.notAfter) $now) (mul $day (int $cfg.servingRenewBeforeDays))) -}}
{{- $_ := set $serving $name $have -}}
{{- else -}}
{{- $c := genSignedCert (first $san.dns) $san.ips $san.dns (int $cfg.servingValidityDays) $cur -}}
{{- $_ := set $serving $name (dict "crt" $c.Cert "key" $c.Key "notAfter" (add $now (mul $day (int $cfg.servingValidityDays))) "caFingerprint" $fp "sans" (toJson $san)) -}}
{{- end -}}
{{- end -}}
{{- $newState := dict "ca.crt" ($cur.Cert | b64enc) "ca.key" ($cur.Key | b64enc) "ca.not-after" ($curNotAfter | toString | b64enc)
      "pod-restore-tls.crt" ($serving.podRestore.crt | b64enc) "pod-restore-tls.key" ($serving.podRestore.key | b64enc)
      "pod-restore.not-after" ($serving.podRestore.notAfter | toString | b64enc) "pod-restore.ca-fingerprint" ($fp | b64enc) "pod-restore.sans" ($serving.podRestore.sans | b64enc) -}}
{{- if $next.Cert -}}
{{- $_ := set $newState "next-ca.crt" ($next.Cert | b64enc) -}}
{{- $_ := set $newState "next-ca.key" ($next.Key | b64enc) -}}
{{- $_ := set $newState "next-ca.not-after" ($nextNotAfter | toString | b64enc) -}}
{{- end -}}
{{- toYaml (dict "caBundle" $bundle "interpreter" $serving.interpreter "podRestore" $serving.podRestore "state" $newState) -}}
{{- else if eq $mode "external" -}}
{{- toYaml (dict "caBundle" .Values.certs.external.caBundle) -}}
{{- else -}}
{{- toYaml (dict "caBundle" "") -}}
{{- end -}}
{{- end -}}
