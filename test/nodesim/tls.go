package nodesim

import (
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"

	"github.com/stateshift/stateshift/test/selfsigned"
)

// servingCert makes a throw-away CA and a serving certificate for the node's
// IP and name, like a kubelet's self-signed serving certificate, and writes
// them to <dataDir>/pki (tls.crt, tls.key, ca.crt; 0600) so that clients can
// verify the node (the agent's --kubelet-ca).
func servingCert(dataDir, nodeName string, ip net.IP) (tls.Certificate, []byte, string, error) {
	ca, err := selfsigned.NewCA()
	if err != nil {
		return tls.Certificate{}, nil, "", fmt.Errorf("CA: %w", err)
	}
	pki := filepath.Join(dataDir, "pki")
	if _, err := ca.WriteServing(pki, ip.String(), nodeName); err != nil {
		return tls.Certificate{}, nil, "", fmt.Errorf("serving certificate: %w", err)
	}
	cert, err := tls.LoadX509KeyPair(filepath.Join(pki, "tls.crt"), filepath.Join(pki, "tls.key"))
	if err != nil {
		return tls.Certificate{}, nil, "", fmt.Errorf("load serving certificate: %w", err)
	}
	return cert, ca.PEM, filepath.Join(pki, "ca.crt"), nil
}
