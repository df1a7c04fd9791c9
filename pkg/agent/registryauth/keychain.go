package registryauth

import (
	"encoding/base64"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// Keychain offers the credentials to go-containerregistry. A registry
// without an entry gets anonymous access, as docker would.
func (c *Config) Keychain() authn.Keychain { return keychain{c} }

type keychain struct{ c *Config }

func (k keychain) Resolve(target authn.Resource) (authn.Authenticator, error) {
	if k.c == nil {
		return authn.Anonymous, nil
	}
	cr, ok := k.c.creds[NormalizeHost(target.RegistryStr())]
	if !ok {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(authn.AuthConfig{
		Username:      cr.username,
		Password:      cr.password,
		IdentityToken: cr.identityToken,
		RegistryToken: cr.registryToken,
	}), nil
}

// Redact replaces every secret of c found in s (passwords, tokens and the
// base64 "auth" form of them) with [REDACTED], for text that comes from
// tools handed the credentials, such as buildah's stderr.
func (c *Config) Redact(s string) string {
	if c == nil {
		return s
	}
	for _, cr := range c.creds {
		for _, secret := range cr.secrets() {
			if secret != "" {
				s = strings.ReplaceAll(s, secret, "[REDACTED]")
			}
		}
	}
	return s
}

// secrets lists the strings of cr that must never be shown, longest first so
// a password inside a token is not half-replaced.
func (cr credential) secrets() []string {
	var out []string
	if cr.username != "" || cr.password != "" {
		out = append(out, base64.StdEncoding.EncodeToString([]byte(cr.username+":"+cr.password)))
	}
	out = append(out, cr.identityToken, cr.registryToken, cr.password)
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}
