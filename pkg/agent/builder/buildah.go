package builder

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/stateshift/stateshift/pkg/agent/registryauth"
	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/pkg/checkpointimage"
)

// Buildah builds the image the way the product was first designed: the
// buildah binary, from scratch, add the archive at /, config with the
// annotations, commit and push in OCI format. buildah 1.28 puts
// `config --annotation` values into the OCI manifest's annotations, which is
// what CRI-O reads (TestBuildahPushesVerifiableImage proves it). Credentials
// reach buildah only through --authfile; the working container and the
// local image are removed after every build, also a failed one.
type Buildah struct {
	// Binary is the buildah program; "" means "buildah" from PATH.
	Binary string
	// Root and RunRoot are buildah's own storage (--root, --runroot), so the
	// agent never shares the node runtime's store. Required.
	Root, RunRoot string
	// StorageDriver is overlay (default) or vfs.
	StorageDriver string
	// TmpDir is where buildah stages blobs (TMPDIR); "" keeps the default.
	TmpDir string
	// Home is buildah's HOME: an empty private folder, so that buildah never
	// finds a node user's ~/.docker/config.json or ~/.config/containers; ""
	// keeps the agent's HOME.
	Home string
	// Run runs buildah; nil means ExecRunner.
	Run Runner
	// CleanupTimeout bounds rm/rmi after the build; 0 means 30s.
	CleanupTimeout time.Duration
}

// Name is "buildah", as in the Checkpoint API.
func (*Buildah) Name() string { return string(v1alpha1.BuilderBuildah) }

// Build runs from/add/config/commit/push and returns the pushed manifest's
// digest as buildah's --digestfile reports it.
func (b *Buildah) Build(ctx context.Context, req Request) (res Result, err error) {
	if err := req.validate(); err != nil {
		return Result{}, err
	}
	if b.Root == "" || b.RunRoot == "" {
		return Result{}, fmt.Errorf("%w: buildah needs Root and RunRoot", ErrInvalidRequest)
	}
	tag, err := req.tag()
	if err != nil {
		return Result{}, err
	}
	// The auth file is read here only to know which strings to scrub from
	// buildah's output; buildah reads it itself through --authfile.
	var redact *registryauth.Config
	if req.AuthFile != "" {
		if redact, err = registryauth.LoadAuthFile(req.AuthFile); err != nil {
			return Result{}, fmt.Errorf("%w: %v", ErrInvalidRequest, err)
		}
	}
	if err := os.MkdirAll(b.RunRoot, 0o700); err != nil {
		return Result{}, fmt.Errorf("buildah: run root: %w", err)
	}
	work, err := os.MkdirTemp(b.RunRoot, "stateshift-build-")
	if err != nil {
		return Result{}, fmt.Errorf("buildah: work folder: %w", err)
	}
	defer os.RemoveAll(work)

	id := randomID()
	ctr := "stateshift-" + id
	local := "localhost/stateshift-build:" + id
	defer func() {
		// A cancelled ctx must not stop the clean-up.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cleanupTimeout())
		defer cancel()
		if cerr := b.cleanup(cctx, ctr, local, redact); cerr != nil && err == nil {
			err = cerr
		}
	}()

	if _, err := b.run(ctx, redact, "from", "--name", ctr, "--pull=never", "scratch"); err != nil {
		return Result{}, err
	}
	if _, err := b.run(ctx, redact, "add", ctr, req.ArchivePath, "/"); err != nil {
		return Result{}, err
	}
	cfg := []string{"config"}
	keys := make([]string, 0, len(req.Annotations))
	for k := range req.Annotations {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// Both detection keys first, as the recipe writes them; then the rest.
	cfg = append(cfg,
		"--annotation", checkpointimage.AnnotationCRIO+"="+req.Annotations[checkpointimage.AnnotationCRIO],
		"--annotation", checkpointimage.AnnotationCRIU+"="+req.Annotations[checkpointimage.AnnotationCRIO])
	for _, k := range keys {
		if k != checkpointimage.AnnotationCRIO && k != checkpointimage.AnnotationCRIU {
			cfg = append(cfg, "--annotation", k+"="+req.Annotations[k])
		}
	}
	cfg = append(cfg, ctr)
	if _, err := b.run(ctx, redact, cfg...); err != nil {
		return Result{}, err
	}
	if _, err := b.run(ctx, redact, "commit", "--format", "oci", "--rm", ctr, local); err != nil {
		return Result{}, err
	}
	digestFile := filepath.Join(work, "digest")
	authFile := req.AuthFile
	if authFile == "" {
		// Anonymous means an explicit empty auth file: without --authfile
		// buildah would look for the node's own credentials
		// (/run/containers/0/auth.json, ~/.docker/config.json), and the two
		// builders would disagree about what "no Secret" means.
		if authFile, err = registryauth.WriteEmptyAuthFile(work); err != nil {
			return Result{}, fmt.Errorf("buildah: %w", err)
		}
	}
	push := []string{"push", "--format", "oci", "--digestfile", digestFile, "--authfile", authFile}
	if req.Insecure {
		push = append(push, "--tls-verify=false")
	}
	push = append(push, local, "docker://"+tag.String())
	if _, err := b.run(ctx, redact, push...); err != nil {
		return Result{}, err
	}
	raw, err := os.ReadFile(digestFile)
	if err != nil {
		return Result{}, fmt.Errorf("buildah push: read --digestfile: %w", err)
	}
	digest := strings.TrimSpace(string(raw))
	if !strings.HasPrefix(digest, "sha256:") || len(digest) != len("sha256:")+64 {
		return Result{}, fmt.Errorf("buildah push: --digestfile holds %q, not a sha256 digest", digest)
	}
	size, err := pushedLayerBytes(ctx, tag, digest, req.AuthFile)
	if err != nil {
		return Result{}, err
	}
	return Result{Digest: digest, Reference: tag.Context().Digest(digest).String(), LayerBytes: size}, nil
}

// pushedLayerBytes reads the pushed manifest back (one small GET) for the
// layer's size: buildah gzips on push, so neither the archive's nor the local
// image's size is what the registry holds.
func pushedLayerBytes(ctx context.Context, tag name.Tag, digest, authFile string) (int64, error) {
	kc, err := keychainFromAuthFile(authFile)
	if err != nil {
		return 0, err
	}
	ref := tag.Context().Digest(digest)
	desc, err := remote.Get(ref, remote.WithContext(ctx), remote.WithAuthFromKeychain(kc))
	if err != nil {
		return 0, fmt.Errorf("buildah: read back %s: %w", ref, err)
	}
	m, err := v1.ParseManifest(bytes.NewReader(desc.Manifest))
	if err != nil {
		return 0, fmt.Errorf("buildah: manifest of %s: %w", ref, err)
	}
	var n int64
	for _, l := range m.Layers {
		n += l.Size
	}
	return n, nil
}

func (b *Buildah) cleanup(ctx context.Context, ctr, image string, redact *registryauth.Config) error {
	var errs []error
	// rm fails when commit --rm already removed the container; only "not
	// known"-style failures are expected.
	if _, err := b.run(ctx, redact, "rm", ctr); err != nil && !isNotFound(err) {
		errs = append(errs, err)
	}
	if _, err := b.run(ctx, redact, "rmi", "--force", image); err != nil && !isNotFound(err) {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("buildah clean-up: %w", errors.Join(errs...))
	}
	return nil
}

func (b *Buildah) cleanupTimeout() time.Duration {
	if b.CleanupTimeout > 0 {
		return b.CleanupTimeout
	}
	return 30 * time.Second
}

// stepError is a failed buildah step with its scrubbed stderr.
type stepError struct {
	step   string
	kind   error // one of the Err* values, or nil
	stderr string
	err    error
}

func (e *stepError) Error() string {
	msg := "buildah " + e.step
	if e.kind != nil {
		msg += ": " + e.kind.Error()
	}
	msg += ": " + e.err.Error()
	if e.stderr != "" {
		msg += ": " + e.stderr
	}
	return msg
}

func (e *stepError) Unwrap() []error {
	if e.kind != nil {
		return []error{e.kind, e.err}
	}
	return []error{e.err}
}

// errorLines keeps buildah's "Error: ..." lines, dropping progress chatter
// ("Copying blob ..."), or all of stderr when there is no such line.
func errorLines(stderr string) string {
	var keep []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "Error:") || strings.Contains(l, "level=error") || strings.Contains(l, "level=fatal") {
			keep = append(keep, strings.TrimSpace(l))
		}
	}
	if len(keep) == 0 {
		return strings.TrimSpace(stderr)
	}
	return strings.Join(keep, "; ")
}

func isNotFound(err error) bool {
	var se *stepError
	if !errors.As(err, &se) {
		return false
	}
	s := strings.ToLower(se.stderr)
	return strings.Contains(s, "not known") || strings.Contains(s, "no such") || strings.Contains(s, "not found") ||
		strings.Contains(s, "image not known") || strings.Contains(s, "does not exist")
}

// run calls buildah with the global storage flags and a minimal environment
// that carries no credentials.
func (b *Buildah) run(ctx context.Context, redact *registryauth.Config, args ...string) ([]byte, error) {
	bin := b.Binary
	if bin == "" {
		bin = "buildah"
	}
	driver := b.StorageDriver
	if driver == "" {
		driver = "overlay"
	}
	argv := append([]string{bin, "--root", b.Root, "--runroot", b.RunRoot, "--storage-driver", driver}, args...)
	run := b.Run
	if run == nil {
		run = ExecRunner
	}
	stdout, stderr, err := run(ctx, Command{Args: argv, Env: b.env()})
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		text := errorLines(string(stderr))
		if redact != nil {
			text = redact.Redact(text)
		}
		if len(text) > 2000 {
			text = "..." + text[len(text)-2000:]
		}
		kind := classifyBuildah(args[0], text)
		if kind == nil && ctx.Err() != nil && args[0] == "push" {
			kind = ErrRegistryUnreachable
		}
		return nil, &stepError{step: args[0], kind: kind, stderr: text, err: err}
	}
	return stdout, nil
}

// env is PATH, HOME, TMPDIR and the containers-* configuration paths if
// set: never REGISTRY_AUTH_FILE, XDG_RUNTIME_DIR (where buildah looks for
// auth.json) or anything else from the agent's environment.
func (b *Buildah) env() []string {
	home := b.Home
	if home == "" {
		home = envOr("HOME", "/root")
	}
	env := []string{"PATH=" + envOr("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"), "HOME=" + home}
	if b.TmpDir != "" {
		env = append(env, "TMPDIR="+b.TmpDir)
	} else if t := os.Getenv("TMPDIR"); t != "" {
		env = append(env, "TMPDIR="+t)
	}
	for _, k := range []string{"CONTAINERS_CONF", "CONTAINERS_REGISTRIES_CONF", "CONTAINERS_STORAGE_CONF"} {
		if v := os.Getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Sweep removes what builds of an agent that was killed mid-way left in
// buildah's storage: working containers (stateshift-<id>, holding the
// unpacked archive, that is process memory), local images
// (localhost/stateshift-build:<id>), per-build folders under RunRoot and
// whatever is in TmpDir (a private folder: staged layers). Only
// stateshift's names are touched in the storage. The agent calls it at start, before
// any build runs.
func (b *Buildah) Sweep(ctx context.Context) (removed []string, err error) {
	if b.Root == "" || b.RunRoot == "" {
		return nil, fmt.Errorf("%w: buildah needs Root and RunRoot", ErrInvalidRequest)
	}
	bin := b.Binary
	if bin == "" {
		bin = "buildah"
	}
	if _, err := exec.LookPath(bin); err != nil && b.Run == nil {
		// No buildah on this node: no build can have left anything.
		return nil, nil
	}
	var errs []error
	out, err := b.run(ctx, nil, "containers", "--all", "--noheading", "--format", "{{.ContainerName}}")
	if err != nil {
		errs = append(errs, err)
	}
	for _, c := range strings.Fields(string(out)) {
		if !strings.HasPrefix(c, "stateshift-") {
			continue
		}
		if _, err := b.run(ctx, nil, "rm", c); err != nil && !isNotFound(err) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "container "+c)
	}
	out, err = b.run(ctx, nil, "images", "--all", "--noheading", "--format", "{{.Name}}:{{.Tag}}")
	if err != nil {
		errs = append(errs, err)
	}
	for _, img := range strings.Fields(string(out)) {
		if !strings.HasPrefix(img, "localhost/stateshift-build:") {
			continue
		}
		if _, err := b.run(ctx, nil, "rmi", "--force", img); err != nil && !isNotFound(err) {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "image "+img)
	}
	dirs, _ := filepath.Glob(filepath.Join(b.RunRoot, "stateshift-build-*"))
	if b.TmpDir != "" {
		// Staged layers: copies of archives.
		staged, _ := filepath.Glob(filepath.Join(b.TmpDir, "*"))
		dirs = append(dirs, staged...)
	}
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, "folder "+d)
	}
	if len(errs) > 0 {
		return removed, fmt.Errorf("buildah sweep: %w", errors.Join(errs...))
	}
	return removed, nil
}
