package registryauth

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// credential is one registry's login. Its fields are unexported; Config's
// Format keeps fmt from walking into them.
type credential struct {
	username      string
	password      string
	identityToken string
	registryToken string
}

// Config holds the credentials of one registry Secret, keyed by normalised
// registry host (host[:port]; Docker Hub is "index.docker.io").
type Config struct {
	creds map[string]credential
}

// Registries lists the registry hosts that have credentials, sorted. They
// are not secret and help error messages.
func (c Config) Registries() []string {
	hosts := make([]string, 0, len(c.creds))
	for h := range c.creds {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	return hosts
}

// String names the registries, never the credentials.
func (c Config) String() string {
	return fmt.Sprintf("registryauth.Config{registries: %v}", c.Registries())
}

// GoString is String: %#v must not reach the fields either.
func (c Config) GoString() string { return c.String() }

// Format makes every verb (%v, %+v, %#v, %s, %q...) print String, because
// fmt would otherwise walk the unexported fields. Value receivers, so a
// Config printed by value is covered too.
func (c Config) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

// Secret types and keys, as kubelet reads them.
const (
	keyDockerConfigJSON = corev1.DockerConfigJsonKey // ".dockerconfigjson"
	keyDockerCfg        = corev1.DockerConfigKey     // ".dockercfg"
)

// Parse reads the registry credentials of a kubernetes.io/dockerconfigjson
// Secret (or the legacy kubernetes.io/dockercfg). Errors name the Secret and
// the problem but never carry its data.
func Parse(secret *corev1.Secret) (*Config, error) {
	if secret == nil {
		return nil, errors.New("registry secret is nil")
	}
	id := secret.Namespace + "/" + secret.Name
	var (
		data   []byte
		ok     bool
		legacy bool
		key    string
	)
	switch secret.Type {
	case corev1.SecretTypeDockerConfigJson:
		key = keyDockerConfigJSON
	case corev1.SecretTypeDockercfg:
		key, legacy = keyDockerCfg, true
	default:
		return nil, fmt.Errorf("registry secret %s has type %q, expected %q (or legacy %q)",
			id, secret.Type, corev1.SecretTypeDockerConfigJson, corev1.SecretTypeDockercfg)
	}
	data, ok = secret.Data[key]
	if !ok {
		if s, sok := secret.StringData[key]; sok {
			data, ok = []byte(s), true
		}
	}
	if !ok || len(data) == 0 {
		return nil, fmt.Errorf("registry secret %s lacks key %s", id, key)
	}
	cfg, err := parse(data, legacy, false)
	if err != nil {
		return nil, fmt.Errorf("registry secret %s key %s: %w", id, key, err)
	}
	return cfg, nil
}

// LoadAuthFile reads a docker config.json file (as WriteAuthFile writes it),
// for a builder that is handed the file rather than the Secret. A file
// without entries is anonymous access.
func LoadAuthFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read auth file: %w", err)
	}
	cfg, err := parse(data, false, true)
	if err != nil {
		return nil, fmt.Errorf("auth file %s: %w", path, err)
	}
	return cfg, nil
}

// entry is one "auths" member of a docker config.json.
type entry struct {
	Auth          string `json:"auth,omitempty"`
	Username      string `json:"username,omitempty"`
	Password      string `json:"password,omitempty"`
	IdentityToken string `json:"identitytoken,omitempty"`
	RegistryToken string `json:"registrytoken,omitempty"`
}

// parse decodes the JSON. json's own errors quote offsets and types, not
// values, but they are replaced by a fixed text anyway to be sure nothing of
// the payload is echoed. allowEmpty accepts a file without entries (an
// explicit anonymous auth file); a Secret without any is a mistake.
func parse(data []byte, legacy, allowEmpty bool) (*Config, error) {
	var auths map[string]entry
	if legacy {
		if err := json.Unmarshal(data, &auths); err != nil {
			return nil, errors.New("malformed dockercfg JSON (expected an object of registry entries)")
		}
	} else {
		var doc struct {
			Auths map[string]entry `json:"auths"`
		}
		if err := json.Unmarshal(data, &doc); err != nil {
			return nil, errors.New(`malformed docker config JSON (expected {"auths": {...}})`)
		}
		auths = doc.Auths
	}
	if len(auths) == 0 && !allowEmpty {
		return nil, errors.New("no registry entries")
	}
	c := &Config{creds: map[string]credential{}}
	keys := make([]string, 0, len(auths))
	for k := range auths {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		host := NormalizeHost(k)
		if host == "" {
			return nil, fmt.Errorf("registry entry %q has no host", k)
		}
		cr, err := toCredential(auths[k])
		if err != nil {
			return nil, fmt.Errorf("registry entry %s: %w", host, err)
		}
		c.creds[host] = cr
	}
	return c, nil
}

// toCredential follows docker: "auth" is base64(user:password) and wins
// over username/password only when those are empty.
func toCredential(e entry) (credential, error) {
	cr := credential{username: e.Username, password: e.Password, identityToken: e.IdentityToken, registryToken: e.RegistryToken}
	if e.Auth != "" && cr.username == "" && cr.password == "" {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(e.Auth))
		if err != nil {
			return credential{}, errors.New(`"auth" is not valid base64`)
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok {
			return credential{}, errors.New(`"auth" does not decode to user:password`)
		}
		cr.username, cr.password = user, pass
	}
	if (cr.username == "" || cr.password == "") && cr.identityToken == "" && cr.registryToken == "" {
		return credential{}, errors.New("no usable credentials (needs username and password, auth, identitytoken or registrytoken)")
	}
	return cr, nil
}

// NormalizeHost turns a docker config key or an image registry into the
// form docker matches on: scheme and path dropped, lower case, Docker Hub's
// aliases folded into "index.docker.io" (go-containerregistry's name for it).
func NormalizeHost(key string) string {
	h := strings.TrimSpace(key)
	h = strings.TrimPrefix(h, "https://")
	h = strings.TrimPrefix(h, "http://")
	h, _, _ = strings.Cut(h, "/")
	h = strings.ToLower(h)
	switch h {
	case "docker.io", "index.docker.io", "registry-1.docker.io":
		return "index.docker.io"
	}
	return h
}
