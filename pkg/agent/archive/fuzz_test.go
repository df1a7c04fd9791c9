package archive

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzReadConfig feeds the archive config reader arbitrary archives (a
// compromised node writes them): it never panics or hangs, and it leaves
// nothing behind in its temporary folder whatever the outcome.
func FuzzReadConfig(f *testing.F) {
	tarOf := func(name string, body []byte, typ byte) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: int64(len(body)), Typeflag: typ})
		_, _ = tw.Write(body)
		_ = tw.Close()
		return b.Bytes()
	}
	f.Add(tarOf("config.dump", []byte(`{"id":"abc","name":"k8s_db_db-0_shop_uid_0","rootfsImageName":"redis:7"}`), tar.TypeReg))
	f.Add(tarOf("./config.dump", []byte(`{"name":""}`), tar.TypeReg))
	f.Add(tarOf("config.dump", []byte(`{`), tar.TypeReg))
	f.Add(tarOf("config.dump", nil, tar.TypeSymlink))
	f.Add(tarOf("../config.dump", []byte(`{"name":"x"}`), tar.TypeReg))
	f.Add([]byte("not a tar"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		archive := filepath.Join(dir, "checkpoint.tar")
		if err := os.WriteFile(archive, data, 0o600); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "work")
		if err := os.Mkdir(tmp, 0o700); err != nil {
			t.Fatal(err)
		}
		cfg, err := ReadConfig(archive, tmp)
		if err == nil && (cfg == nil || cfg.Name == "") {
			t.Fatalf("accepted a config without a container name: %+v", cfg)
		}
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Fatalf("ReadConfig left %v in its temporary folder", left)
		}
		if left, _ := os.ReadDir(dir); len(left) != 2 {
			t.Fatalf("ReadConfig wrote outside its temporary folder: %v", left)
		}
	})
}
