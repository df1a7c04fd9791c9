package main

import (
	"archive/tar"
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"
	"os"
	"time"
)

// writeArchive writes a checkpoint archive in the kubelet's layout whose
// memory pages are random (incompressible, like a real memory dump),
// streamed in 1 MiB pieces.
func writeArchive(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	mod := time.Unix(1700000000, 0)
	small := []struct{ name, data string }{
		{"config.dump", `{"id":"bench","name":"web","rootfsImageName":"docker.io/library/busybox:1.36"}`},
		{"spec.dump", `{"ociVersion":"1.0.2"}`},
	}
	for _, s := range small {
		if err := tw.WriteHeader(&tar.Header{Name: s.name, Mode: 0o600, Size: int64(len(s.data)), ModTime: mod, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := tw.Write([]byte(s.data)); err != nil {
			return err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Name: "checkpoint/", Mode: 0o700, ModTime: mod, Typeflag: tar.TypeDir}); err != nil {
		return err
	}
	pages := size - 5*512 - 1024 // headers, small files and the end blocks
	if pages < 0 {
		pages = 0
	}
	pages -= pages % 4096
	if err := tw.WriteHeader(&tar.Header{Name: "checkpoint/pages-1.img", Mode: 0o600, Size: pages, ModTime: mod, Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	var seed [32]byte
	_, _ = crand.Read(seed[:])
	rng := rand.NewChaCha8(seed)
	buf := make([]byte, 1<<20)
	for left := pages; left > 0; {
		n := int64(len(buf))
		if left < n {
			n = left
		}
		_, _ = rng.Read(buf[:n])
		if _, err := tw.Write(buf[:n]); err != nil {
			return err
		}
		left -= n
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// stampNonce overwrites 32 bytes in the middle of the page data, so each
// round pushes different bytes of the same size.
func stampNonce(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	nonce := make([]byte, 32)
	_, _ = crand.Read(nonce)
	off := (fi.Size() / 2) &^ 511
	if _, err := f.WriteAt(nonce, off); err != nil {
		return fmt.Errorf("stamp nonce: %w", err)
	}
	return f.Close()
}
