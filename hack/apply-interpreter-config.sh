#!/usr/bin/env bash
# Applies stateshift's ResourceInterpreterWebhookConfiguration to the Karmada
# API server (KUBECONFIG), with a serving certificate for the webhook; with
# --webhook pod-restore, the member cluster's MutatingWebhookConfiguration of
# the pod-restore webhook instead (KUBECONFIG: the member's API server).
#
#   KUBECONFIG=karmada.config hack/apply-interpreter-config.sh \
#       (--url https://127.0.0.1:8443/interpreter | --service stateshift-system/stateshift-interpreter-webhook) \
#       --cert-dir DIR [--secret-kubeconfig FILE] [--days N]
#   KUBECONFIG=member.config hack/apply-interpreter-config.sh --webhook pod-restore \
#       (--url https://127.0.0.1:9443/mutate-pods | --service stateshift-system/stateshift-pod-restore) --cert-dir DIR
#   KUBECONFIG=karmada.config hack/apply-interpreter-config.sh [--webhook pod-restore] --delete
#
# In DIR it keeps ca.crt/ca.key and tls.crt/tls.key (0600). Both are reused
# while valid for 30 more days and, for the serving certificate, while its
# SANs cover the Service names and the URL host: re-running is safe. The
# caBundle is filled from ca.crt. With --service, the tls Secret
# stateshift-interpreter-webhook-certs is applied in the Service's namespace
# (on --secret-kubeconfig, default KUBECONFIG: where the webhook runs).
set -euo pipefail

. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KUBECTL="${KUBECTL:-${KUBE_BIN}/kubectl}"
URL="" MODE="" CERT_DIR="" DELETE=0 DAYS=365 SECRET_KUBECONFIG="" WEBHOOK=interpreter SERVICE=""

usage() {
	sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

while [[ $# -gt 0 ]]; do
	case "$1" in
	--url) URL="${2:?--url needs a value}"; MODE=url; shift 2 ;;
	--service) SERVICE="${2:?--service needs namespace/name}"; MODE=service; shift 2 ;;
	--cert-dir) CERT_DIR="${2:?--cert-dir needs a value}"; shift 2 ;;
	--secret-kubeconfig) SECRET_KUBECONFIG="${2:?}"; shift 2 ;;
	--days) DAYS="${2:?}"; shift 2 ;;
	--delete) DELETE=1; shift ;;
	--webhook) WEBHOOK="${2:?--webhook needs interpreter or pod-restore}"; shift 2 ;;
	-h | --help) usage ;;
	*) log "unknown argument: $1"; usage ;;
	esac
done

# What each webhook's configuration is called and served as.
case "${WEBHOOK}" in
interpreter)
	CONFIG="${ROOT_DIR}/artifacts/interpreter/webhook-configuration.yaml"
	RESOURCE=resourceinterpreterwebhookconfigurations.config.karmada.io
	CONFIG_NAME=stateshift-interpreter SECRET_NAME=stateshift-interpreter-webhook-certs
	SERVICE="${SERVICE:-stateshift-system/stateshift-interpreter-webhook}" SERVICE_PATH=/interpreter
	;;
pod-restore)
	CONFIG="${ROOT_DIR}/artifacts/agent/pod-restore-webhook.yaml"
	RESOURCE=mutatingwebhookconfigurations.admissionregistration.k8s.io
	CONFIG_NAME=stateshift-pod-restore SECRET_NAME=stateshift-pod-restore-certs
	SERVICE="${SERVICE:-stateshift-system/stateshift-pod-restore}" SERVICE_PATH=/mutate-pods
	;;
*) die "--webhook must be interpreter or pod-restore, got ${WEBHOOK}" ;;
esac

[[ -x "${KUBECTL}" ]] || die "kubectl not found at ${KUBECTL} (hack/build-deps.sh kube builds it, or set KUBECTL)"
[[ -n "${KUBECONFIG:-}" ]] || die "set KUBECONFIG to the Karmada API server's kubeconfig"

if [[ "${DELETE}" == 1 ]]; then
	log "deleting ${RESOURCE} ${CONFIG_NAME}"
	"${KUBECTL}" delete "${RESOURCE}" "${CONFIG_NAME}" --ignore-not-found
	exit 0
fi

[[ -n "${MODE}" ]] || { log "give --url or --service"; usage; }
[[ -n "${CERT_DIR}" ]] || { log "give --cert-dir"; usage; }
[[ "${SERVICE}" == */* ]] || die "--service must be namespace/name, got ${SERVICE}"
SVC_NS="${SERVICE%%/*}" SVC_NAME="${SERVICE#*/}"

# The certificate names: the Service's DNS names always (the same pair then
# serves both modes), plus the URL's host.
HOSTS=("${SVC_NAME}.${SVC_NS}.svc" "${SVC_NAME}.${SVC_NS}.svc.cluster.local")
if [[ "${MODE}" == url ]]; then
	[[ "${URL}" =~ ^https://([^/:]+|\[[0-9a-fA-F:]+\])(:[0-9]+)?(/.*)?$ ]] || die "--url must be https://host[:port][/path], got ${URL}"
	URL_HOST="${BASH_REMATCH[1]}"
	URL_HOST="${URL_HOST#[}" URL_HOST="${URL_HOST%]}"
	HOSTS+=("${URL_HOST}")
fi

is_ip() { [[ "$1" =~ ^[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+$ || "$1" == *:* ]]; }

umask 077
mkdir -p "${CERT_DIR}"
chmod 700 "${CERT_DIR}"
TMP="$(mktemp -d)"
trap 'rm -rf "${TMP}"' EXIT
CHECKEND=$((30 * 24 * 3600))

ca_valid() {
	[[ -s "${CERT_DIR}/ca.crt" && -s "${CERT_DIR}/ca.key" ]] &&
		openssl x509 -in "${CERT_DIR}/ca.crt" -noout -checkend "${CHECKEND}" >/dev/null 2>&1
}

serving_valid() {
	local crt="${CERT_DIR}/tls.crt" key="${CERT_DIR}/tls.key" h
	[[ -s "${crt}" && -s "${key}" ]] || return 1
	openssl x509 -in "${crt}" -noout -checkend "${CHECKEND}" >/dev/null 2>&1 || return 1
	openssl verify -CAfile "${CERT_DIR}/ca.crt" "${crt}" >/dev/null 2>&1 || return 1
	# The key must match the certificate.
	[[ "$(openssl x509 -in "${crt}" -noout -pubkey)" == "$(openssl pkey -in "${key}" -pubout)" ]] || return 1
	for h in "${HOSTS[@]}"; do
		if is_ip "${h}"; then
			openssl x509 -in "${crt}" -noout -checkip "${h}" | grep -q "does match" || return 1
		else
			openssl x509 -in "${crt}" -noout -checkhost "${h}" | grep -q "does match" || return 1
		fi
	done
}

if ca_valid; then
	log "reusing CA ${CERT_DIR}/ca.crt"
else
	log "creating CA in ${CERT_DIR}"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days $((DAYS * 3)) \
		-subj "/CN=stateshift-${WEBHOOK}-webhook-ca" -addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
		-keyout "${TMP}/ca.key" -out "${TMP}/ca.crt" 2>/dev/null
	mv "${TMP}/ca.key" "${CERT_DIR}/ca.key"
	mv "${TMP}/ca.crt" "${CERT_DIR}/ca.crt"
	rm -f "${CERT_DIR}/tls.crt" "${CERT_DIR}/tls.key"
fi

if serving_valid; then
	log "reusing serving certificate ${CERT_DIR}/tls.crt (SANs: ${HOSTS[*]})"
else
	log "creating serving certificate for ${HOSTS[*]}"
	SAN=""
	for h in "${HOSTS[@]}"; do
		if is_ip "${h}"; then SAN+="IP:${h},"; else SAN+="DNS:${h},"; fi
	done
	cat >"${TMP}/ext.cnf" <<-EXT
		basicConstraints=critical,CA:FALSE
		keyUsage=critical,digitalSignature,keyEncipherment
		extendedKeyUsage=serverAuth
		subjectAltName=${SAN%,}
	EXT
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-subj "/CN=${HOSTS[0]}" -keyout "${TMP}/tls.key" -out "${TMP}/tls.csr" 2>/dev/null
	openssl x509 -req -in "${TMP}/tls.csr" -CA "${CERT_DIR}/ca.crt" -CAkey "${CERT_DIR}/ca.key" \
		-set_serial "0x$(openssl rand -hex 16)" -days "${DAYS}" -extfile "${TMP}/ext.cnf" \
		-out "${TMP}/tls.crt" 2>/dev/null
	# Key first, then certificate, each by rename: a running webhook's
	# certificate watcher never sees a half-written or mismatched pair.
	mv "${TMP}/tls.key" "${CERT_DIR}/tls.key"
	mv "${TMP}/tls.crt" "${CERT_DIR}/tls.crt"
fi
chmod 600 "${CERT_DIR}/tls.key" "${CERT_DIR}/tls.crt" "${CERT_DIR}/ca.key" "${CERT_DIR}/ca.crt"

if [[ "${MODE}" == service ]]; then
	SK="${SECRET_KUBECONFIG:-${KUBECONFIG}}"
	log "applying namespace ${SVC_NS} and Secret ${SVC_NS}/${SECRET_NAME} (kubeconfig ${SK})"
	"${KUBECTL}" --kubeconfig "${SK}" create namespace "${SVC_NS}" --dry-run=client -o yaml |
		"${KUBECTL}" --kubeconfig "${SK}" apply -f -
	"${KUBECTL}" --kubeconfig "${SK}" -n "${SVC_NS}" create secret tls "${SECRET_NAME}" \
		--cert "${CERT_DIR}/tls.crt" --key "${CERT_DIR}/tls.key" --dry-run=client -o yaml |
		"${KUBECTL}" --kubeconfig "${SK}" apply -f -
fi

CA_BUNDLE="$(base64 -w0 <"${CERT_DIR}/ca.crt")"
if [[ "${MODE}" == url ]]; then
	CLIENT="url: \"${URL}\""
	log "pointing the API server at ${URL}"
else
	CLIENT="service: {namespace: ${SVC_NS}, name: ${SVC_NAME}, path: ${SERVICE_PATH}, port: 443}"
	log "pointing the API server at Service ${SVC_NS}/${SVC_NAME}:443${SERVICE_PATH}"
fi
log "applying ${RESOURCE} ${CONFIG_NAME}"
sed -e "s#^\( *\)service: {namespace: stateshift-system.*#\1${CLIENT}#" \
	-e "s@^\( *\)# caBundle: .*@\1caBundle: ${CA_BUNDLE}@" "${CONFIG}" |
	"${KUBECTL}" apply -f -
