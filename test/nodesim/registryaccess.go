package nodesim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// registryAccess knows which registries the runtime pulls from, which use
// plain HTTP, and the credentials for them.
type registryAccess struct {
	hosts    map[string]bool
	insecure map[string]bool
	keychain authn.Keychain
}

func newRegistryAccess(o RegistryOptions) (*registryAccess, error) {
	r := &registryAccess{hosts: map[string]bool{}, insecure: map[string]bool{}}
	for _, h := range o.Hosts {
		r.hosts[normalizeHost(h)] = true
	}
	for _, h := range o.InsecureHosts {
		r.hosts[normalizeHost(h)] = true
		r.insecure[normalizeHost(h)] = true
	}
	var chains []authn.Keychain
	if o.Keychain != nil {
		chains = append(chains, o.Keychain)
	}
	if o.AuthFile != "" {
		fk, err := loadDockerConfig(o.AuthFile)
		if err != nil {
			return nil, err
		}
		for h := range fk.auths {
			r.hosts[h] = true
		}
		chains = append(chains, fk)
	}
	r.keychain = authn.NewMultiKeychain(chains...)
	return r, nil
}

// reference parses image and says whether its registry is one the runtime
// looks up; the others are treated as ordinary images without a network call.
func (r *registryAccess) reference(image string) (name.Reference, bool, error) {
	ref, err := name.ParseReference(image)
	if err != nil {
		return nil, false, fmt.Errorf("invalid image reference %q: %w", image, err)
	}
	host := ref.Context().RegistryStr()
	if !r.hosts[host] {
		return ref, false, nil
	}
	if r.insecure[host] {
		if ref, err = name.ParseReference(image, name.Insecure); err != nil {
			return nil, false, fmt.Errorf("invalid image reference %q: %w", image, err)
		}
	}
	return ref, true, nil
}

func normalizeHost(h string) string {
	h = strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://")
	if i := strings.IndexByte(h, '/'); i >= 0 {
		h = h[:i]
	}
	if h == "docker.io" {
		return name.DefaultRegistry
	}
	return h
}

// fileKeychain serves credentials from a dockerconfigjson file, the format of
// kubernetes.io/dockerconfigjson Secrets, so credentials never travel on a
// command line or in the environment.
type fileKeychain struct {
	auths map[string]authn.AuthConfig
}

func loadDockerConfig(path string) (*fileKeychain, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read registry auth file: %w", err)
	}
	return parseDockerConfig(data, "registry auth file "+path)
}

// parseDockerConfig reads dockerconfigjson data; source names it in errors
// (never the data: it holds credentials).
func parseDockerConfig(data []byte, source string) (*fileKeychain, error) {
	var f struct {
		Auths map[string]struct {
			Auth          string `json:"auth"`
			Username      string `json:"username"`
			Password      string `json:"password"`
			IdentityToken string `json:"identitytoken"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("%s is not dockerconfigjson: %w", source, err)
	}
	k := &fileKeychain{auths: map[string]authn.AuthConfig{}}
	for host, a := range f.Auths {
		cfg := authn.AuthConfig{Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken}
		if a.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return nil, fmt.Errorf("%s: auth of %s is not base64", source, host)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok {
				return nil, fmt.Errorf("%s: auth of %s is not user:password", source, host)
			}
			cfg.Username, cfg.Password = user, pass
		}
		k.auths[normalizeHost(host)] = cfg
	}
	return k, nil
}

func (k *fileKeychain) Resolve(res authn.Resource) (authn.Authenticator, error) {
	if cfg, ok := k.auths[res.RegistryStr()]; ok {
		return authn.FromConfig(cfg), nil
	}
	return authn.Anonymous, nil
}
