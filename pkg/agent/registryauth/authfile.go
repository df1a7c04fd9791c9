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
// cleanup removes the directory; call it once the build is done. A nil or
// empty Config writes a file without entries: anonymous access said
// explicitly, so that no tool falls back to credentials of its own.
func (c *Config) WriteAuthFile(dir string) (path string, cleanup func(), err error) {
	tmp, err := os.MkdirTemp(dir, "stateshift-auth-")
	if err != nil {
		return "", nil, fmt.Errorf("auth file folder: %w", err)
	}
	cleanup = func() { _ = os.RemoveAll(tmp) }
	if err := os.Chmod(tmp, 0o700); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("auth file folder: %w", err)
	}
	var creds map[string]credential
	if c != nil {
		creds = c.creds
	}
	auths := make(map[string]entry, len(creds)+1)
	for host, cr := range creds {
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
	if err := writePrivate(path, data); err != nil {
		cleanup()
		return "", nil, err
	}
	return path, cleanup, nil
}

// WriteEmptyAuthFile writes dir/auth.json without entries (anonymous
// access) into an existing private folder the caller removes.
func WriteEmptyAuthFile(dir string) (string, error) {
	path := filepath.Join(dir, "auth.json")
	return path, writePrivate(path, []byte(`{"auths":{}}`))
}

func writePrivate(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create auth file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return fmt.Errorf("write auth file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write auth file: %w", err)
	}
	return nil
}
