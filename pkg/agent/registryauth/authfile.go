package registryauth

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// WriteAuthFile writes the credentials as a docker config.json
// (containers-auth.json) file, the format buildah's --authfile reads: mode
// 0600 inside a fresh 0700 directory under dir ("" means os.TempDir()).
// cleanup removes the directory; call it once the build is done.
func (c *Config) WriteAuthFile(dir string) (path string, cleanup func(), err error) {
	if c == nil || len(c.creds) == 0 {
		return "", nil, fmt.Errorf("no registry credentials to write")
	}
	tmp, err := os.MkdirTemp(dir, "stateshift-auth-")
	if err != nil {
		return "", nil, fmt.Errorf("auth file folder: %w", err)
	}
	cleanup = func() { _ = os.RemoveAll(tmp) }
	if err := os.Chmod(tmp, 0o700); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("auth file folder: %w", err)
	}
	auths := make(map[string]entry, len(c.creds)+1)
	for host, cr := range c.creds {
		e := entry{IdentityToken: cr.identityToken, RegistryToken: cr.registryToken}
		if cr.username != "" || cr.password != "" {
			e.Auth = base64.StdEncoding.EncodeToString([]byte(cr.username + ":" + cr.password))
		}
		auths[host] = e
		if host == "index.docker.io" {
			// containers/image looks Docker Hub up as "docker.io".
			auths["docker.io"] = e
		}
	}
	data, err := json.Marshal(struct {
		Auths map[string]entry `json:"auths"`
	}{auths})
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("encode auth file: %w", err)
	}
	path = filepath.Join(tmp, "auth.json")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		cleanup()
		return "", nil, fmt.Errorf("create auth file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		cleanup()
		return "", nil, fmt.Errorf("write auth file: %w", err)
	}
	if err := f.Close(); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("write auth file: %w", err)
	}
	return path, cleanup, nil
}
