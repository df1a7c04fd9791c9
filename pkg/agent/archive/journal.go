package archive

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Journal remembers, per Checkpoint UID, which archives an attempt may have
// made on the node, so that an agent killed mid-way (OOM, SIGKILL, a node
// reboot) deletes them when it starts again. An entry is written before the
// kubelet is asked (an archive can exist before its path is known) and
// removed once every archive of the attempt is deleted. Entries hold names
// and paths only, never memory or credentials, so the journal may live on
// the node's disk, which outlives a reboot; the archives it points at do
// too.
type Journal struct {
	// Dir holds one <uid>.json per unfinished attempt; created 0700.
	Dir string
}

// Entry is what one attempt may have left in the checkpoint folder.
type Entry struct {
	UID        string    `json:"uid"`
	Namespace  string    `json:"namespace"`
	Pod        string    `json:"pod"`
	Containers []string  `json:"containers"`
	Started    time.Time `json:"started"`
	// Paths the kubelet answered: every one of them, not only the first.
	Paths []string `json:"paths,omitempty"`
	// Checkpoint is the Checkpoint's name, to say whose images are left
	// when its entry is dropped unreported (ForgetStale).
	Checkpoint string `json:"checkpoint,omitempty"`
	// Images pushed by the attempts, recorded as soon as a push returns
	// its digest: a checkpoint image is a memory dump, and an agent killed
	// before the status names it would otherwise leave it known to
	// nobody. The agent reports those that are not the result in the
	// Checkpoint's status.strayImages; the entry is kept until then.
	Images []PushedImage `json:"images,omitempty"`
}

// PushedImage is one image an attempt pushed, by digest.
type PushedImage struct {
	Container string `json:"container"`
	Image     string `json:"image"`
	Attempt   int32  `json:"attempt,omitempty"`
}

var uidSafe = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

func (j *Journal) file(uid string) (string, error) {
	if !uidSafe.MatchString(uid) {
		return "", fmt.Errorf("checkpoint UID %q cannot name a journal entry", uid)
	}
	return filepath.Join(j.Dir, uid+".json"), nil
}

// Record writes (or replaces) e, durably enough that a kill right after
// Record returns still finds it: written to a temporary file, synced and
// renamed.
func (j *Journal) Record(e Entry) error {
	p, err := j.file(e.UID)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(j.Dir, 0o700); err != nil {
		return fmt.Errorf("archive journal: %w", err)
	}
	data, err := json.Marshal(e)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(j.Dir, ".entry-")
	if err != nil {
		return fmt.Errorf("archive journal: %w", err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("archive journal: %w", err)
	}
	return nil
}

// Begin records the start of an attempt. An entry left by an earlier
// attempt of the same Checkpoint is kept and extended: its archives (a
// kubelet that answered late may have written one after that attempt gave
// up) are still to be deleted.
func (j *Journal) Begin(e Entry) (Entry, error) {
	if old, ok := j.read(e.UID); ok {
		if old.Started.Before(e.Started) {
			e.Started = old.Started
		}
		e.Paths = append(old.Paths, e.Paths...)
		e.Images = append(old.Images, e.Images...)
		if e.Checkpoint == "" {
			e.Checkpoint = old.Checkpoint
		}
		seen := map[string]bool{}
		for _, c := range e.Containers {
			seen[c] = true
		}
		for _, c := range old.Containers {
			if !seen[c] {
				e.Containers = append(e.Containers, c)
			}
		}
	}
	return e, j.Record(e)
}

// Lookup returns the entry of uid, if there is a readable one.
func (j *Journal) Lookup(uid string) (Entry, bool) { return j.read(uid) }

func (j *Journal) read(uid string) (Entry, bool) {
	p, err := j.file(uid)
	if err != nil {
		return Entry{}, false
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return Entry{}, false
	}
	var e Entry
	if json.Unmarshal(data, &e) != nil || e.UID != uid {
		return Entry{}, false
	}
	return e, true
}

// Delete removes the archives of e: the paths the kubelet answered and any
// the kubelet wrote for e's containers since e started. It returns the
// deleted paths; errors name the files that could not be deleted.
func Delete(dir string, e Entry) ([]string, error) {
	paths := append([]string(nil), e.Paths...)
	for _, c := range e.Containers {
		paths = append(paths, Matching(dir, e.Namespace, e.Pod, c, e.Started.Add(-clockSlack))...)
	}
	var deleted []string
	var errs []error
	seen := map[string]bool{}
	for _, p := range paths {
		real, err := Resolve(dir, p)
		if err != nil || seen[real] {
			// Gone already, or outside the folder: never ours to delete.
			continue
		}
		seen[real] = true
		if err := os.Remove(real); err != nil && !os.IsNotExist(err) {
			errs = append(errs, fmt.Errorf("delete archive %s: %w", real, err))
			continue
		}
		deleted = append(deleted, real)
	}
	return deleted, errors.Join(errs...)
}

// Forget removes the entry of uid once its archives are gone.
func (j *Journal) Forget(uid string) error {
	p, err := j.file(uid)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("archive journal: %w", err)
	}
	return nil
}

// Entries lists the recorded entries; unreadable files are reported and
// skipped so that one bad file does not keep the others' archives.
func (j *Journal) Entries() ([]Entry, []error) {
	files, err := os.ReadDir(j.Dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, []error{fmt.Errorf("archive journal: %w", err)}
	}
	var out []Entry
	var errs []error
	for _, f := range files {
		if strings.HasPrefix(f.Name(), ".entry-") {
			// A Record interrupted before its rename: it never counted.
			_ = os.Remove(filepath.Join(j.Dir, f.Name()))
			continue
		}
		if !strings.HasSuffix(f.Name(), ".json") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(j.Dir, f.Name()))
		if err != nil {
			errs = append(errs, fmt.Errorf("archive journal %s: %w", f.Name(), err))
			continue
		}
		var e Entry
		if err := json.Unmarshal(data, &e); err != nil || e.UID+".json" != f.Name() {
			errs = append(errs, fmt.Errorf("archive journal %s: not an entry of this agent", f.Name()))
			continue
		}
		out = append(out, e)
	}
	return out, errs
}

// clockSlack allows for the kubelet's timestamp (whole seconds) and file
// times being a little before the agent's own clock reading.
const clockSlack = 2 * time.Second

// Sweep deletes, for every entry, the archives the kubelet answered and any
// archive in dir that the kubelet may have written for the entry's
// containers since it started (named checkpoint-<pod>_<namespace>-
// <container>-<RFC 3339 time>.tar, the kubelet's naming), then forgets the
// entry, unless it records pushed images: those stay (without paths) for
// the agent to report in the Checkpoint's status. Archives of other pods,
// and of these containers from before the attempt (someone else's
// checkpoint), are left alone. It returns the deleted paths.
func (j *Journal) Sweep(dir string) ([]string, error) {
	entries, errs := j.Entries()
	var deleted []string
	for _, e := range entries {
		d, err := Delete(dir, e)
		deleted = append(deleted, d...)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(e.Images) > 0 {
			// Archives gone; the images are still to be reported.
			e.Paths, e.Containers = nil, nil
			if err := j.Record(e); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if err := j.Forget(e.UID); err != nil {
			errs = append(errs, err)
		}
	}
	return deleted, errors.Join(errs...)
}

// ForgetStale forgets the entries with pushed images whose attempt started
// before cutoff and returns them. Their Checkpoint never came back to this
// agent (deleted while the agent was down): nothing can record the images
// any more, so the caller logs them for an operator to delete, rather
// than the journal growing for ever.
func (j *Journal) ForgetStale(cutoff time.Time) ([]Entry, error) {
	// Unreadable files were reported by Sweep already.
	entries, _ := j.Entries()
	var errs []error
	var stale []Entry
	for _, e := range entries {
		if len(e.Images) == 0 || !e.Started.Before(cutoff) {
			continue
		}
		if err := j.Forget(e.UID); err != nil {
			errs = append(errs, err)
			continue
		}
		stale = append(stale, e)
	}
	return stale, errors.Join(errs...)
}

// Matching lists the archives in dir the kubelet wrote for one container
// at or after since.
func Matching(dir, namespace, pod, container string, since time.Time) []string {
	prefix := "checkpoint-" + pod + "_" + namespace + "-" + container + "-"
	files, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, f := range files {
		n := f.Name()
		if !strings.HasPrefix(n, prefix) || !strings.HasSuffix(n, ".tar") {
			continue
		}
		// The rest must be exactly the timestamp: "checkpoint-db_shop-x-..."
		// of namespace "shop-x" is not container "x-..." of namespace "shop".
		if _, err := time.Parse(time.RFC3339, strings.TrimSuffix(strings.TrimPrefix(n, prefix), ".tar")); err != nil {
			continue
		}
		fi, err := f.Info()
		if err != nil || fi.ModTime().Before(since) {
			continue
		}
		out = append(out, filepath.Join(dir, n))
	}
	return out
}
