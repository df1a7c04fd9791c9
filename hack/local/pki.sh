# Certificates and keys of a local environment, made with openssl. Source
# after hack/local/lib.sh. Every file is written once: a second local-up
# reuses them, so running components keep trusting each other.
#
# pki/ca.{crt,key}              signs every serving and client certificate
# pki/front-proxy-ca.{crt,key}  signs the aggregator's client certificate
# pki/apiserver.{crt,key}       serving cert of the three kube-apiservers (127.0.0.1)
# pki/aggregated-apiserver.*    karmada-aggregated-apiserver; the aggregator checks the
#                               name karmada-aggregated-apiserver.karmada-system.svc
# pki/karmada-webhook/tls.*     karmada-webhook's --cert-dir (SAN 127.0.0.1)
# pki/admin.*                   client cert, O=system:masters
# pki/front-proxy-client.*      the aggregator's client cert
# pki/node-<node>.*             node client cert, O=system:nodes (node simulator, real kubelet)
# pki/kubelet-<node>.*          a real kubelet's serving cert (SAN its loopback IP)
# pki/apiserver-kubelet-client.* the member API servers' client cert to kubelets
# pki/sa-<cluster>.{key,pub}    service-account signing keys per cluster

# new_key FILE: an ECDSA P-256 key (fast to make, accepted by every component).
new_key() {
  [[ -f "$1" ]] && return 0
  (umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null)
}

# new_ca NAME CN: a self-signed CA pki/NAME.{crt,key}.
new_ca() {
  local name="$1" cn="$2"
  [[ -f "${PKI_DIR}/${name}.crt" ]] && return 0
  new_key "${PKI_DIR}/${name}.key"
  openssl req -x509 -new -key "${PKI_DIR}/${name}.key" -subj "/CN=${cn}" -days 3650 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    -out "${PKI_DIR}/${name}.crt" 2>/dev/null
}

# new_cert CA OUT_PREFIX SUBJECT [SAN]: a leaf certificate OUT_PREFIX.{crt,key}
# signed by pki/CA, good for both serving and client authentication.
new_cert() {
  local ca="$1" out="$2" subj="$3" san="${4:-}" ext
  [[ -f "${out}.crt" ]] && return 0
  mkdir -p "$(dirname "${out}")"
  new_key "${out}.key"
  ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth"
  [[ -n "${san}" ]] && ext+=$'\n'"subjectAltName=${san}"
  openssl req -new -key "${out}.key" -subj "${subj}" 2>/dev/null |
    openssl x509 -req -CA "${PKI_DIR}/${ca}.crt" -CAkey "${PKI_DIR}/${ca}.key" \
      -set_serial "0x$(openssl rand -hex 16)" -days 3650 -out "${out}.crt" \
      -extfile <(echo "${ext}") 2>/dev/null
}

# new_sa_keys CLUSTER: the key pair that signs CLUSTER's service-account tokens.
new_sa_keys() {
  local key="${PKI_DIR}/sa-$1.key"
  [[ -f "${PKI_DIR}/sa-$1.pub" ]] && return 0
  (umask 077 && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "${key}" 2>/dev/null)
  openssl pkey -in "${key}" -pubout -out "${PKI_DIR}/sa-$1.pub" 2>/dev/null
}

setup_pki() {
  mkdir -p "${PKI_DIR}"
  chmod 700 "${PKI_DIR}"
  new_ca ca stateshift-local-ca
  new_ca front-proxy-ca stateshift-local-front-proxy-ca
  new_cert ca "${PKI_DIR}/apiserver" "/CN=kube-apiserver" \
    "IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  new_cert ca "${PKI_DIR}/aggregated-apiserver" "/CN=karmada-aggregated-apiserver" \
    "IP:127.0.0.1,DNS:localhost,DNS:karmada-aggregated-apiserver.karmada-system.svc,DNS:karmada-aggregated-apiserver.karmada-system.svc.cluster.local"
  new_cert ca "${PKI_DIR}/karmada-webhook/tls" "/CN=karmada-webhook" "IP:127.0.0.1,DNS:localhost"
  new_cert ca "${PKI_DIR}/admin" "/O=system:masters/CN=stateshift-local-admin"
  new_cert front-proxy-ca "${PKI_DIR}/front-proxy-client" "/CN=front-proxy-client"
  new_cert ca "${PKI_DIR}/apiserver-kubelet-client" "/O=system:masters/CN=kube-apiserver-kubelet-client"
  local c
  for c in karmada "${NODE_CLUSTERS[@]}"; do new_sa_keys "${c}"; done
}

# write_kubeconfig FILE SERVER CERT_PREFIX USER: a kubeconfig with the CA and
# client certificate embedded (karmadactl join copies CA data from it).
write_kubeconfig() {
  local file="$1" server="$2" cert="$3" user="$4" name
  name="$(basename "${file}" .kubeconfig)"
  (umask 077 && cat > "${file}" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ${name}
  cluster:
    server: ${server}
    certificate-authority-data: $(base64 -w0 < "${PKI_DIR}/ca.crt")
users:
- name: ${user}
  user:
    client-certificate-data: $(base64 -w0 < "${cert}.crt")
    client-key-data: $(base64 -w0 < "${cert}.key")
contexts:
- name: ${name}
  context:
    cluster: ${name}
    user: ${user}
current-context: ${name}
EOF
  )
}
