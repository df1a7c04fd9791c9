package archive

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

func writeArchive(t *testing.T, dir, name string, mtime time.Time) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("memory"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return p
}

// A journal entry left by a killed attempt: the sweep deletes every path
// the kubelet answered and every archive the kubelet may have written for
// the entry's containers since the attempt started, and nothing else.
func TestSecurityJournalSweepDeletesOnlyTheAttemptsArchives(t *testing.T) {
	dir := t.TempDir()
	outside := t.TempDir()
	started := time.Now().Add(-time.Minute).Truncate(time.Second)
	ts := func(d time.Duration) string { return started.Add(d).UTC().Format(time.RFC3339) }

	answered := writeArchive(t, dir, "checkpoint-db-0_shop-db-"+ts(time.Second)+".tar", started.Add(time.Second))
	extra := writeArchive(t, dir, "checkpoint-db-0_shop-db-extra.tar", started.Add(time.Second))
	unanswered := writeArchive(t, dir, "checkpoint-db-0_shop-sidecar-"+ts(2*time.Second)+".tar", started.Add(2*time.Second))
	keep := []string{
		// Older than the attempt: someone else's checkpoint of the container.
		writeArchive(t, dir, "checkpoint-db-0_shop-db-"+ts(-time.Hour)+".tar", started.Add(-time.Hour)),
		// Another pod, and a namespace whose name extends this one's.
		writeArchive(t, dir, "checkpoint-db-1_shop-db-"+ts(time.Second)+".tar", started.Add(time.Second)),
		writeArchive(t, dir, "checkpoint-db-0_shop-db-x-"+ts(time.Second)+".tar", started.Add(time.Second)),
		// Outside the checkpoint folder, though the kubelet named it.
		writeArchive(t, outside, "checkpoint-db-0_shop-db-"+ts(time.Second)+".tar", started.Add(time.Second)),
	}
	j := &Journal{Dir: filepath.Join(t.TempDir(), "journal")}
	e, err := j.Begin(Entry{UID: "0b5c-uid", Namespace: "shop", Pod: "db-0", Containers: []string{"db", "sidecar"}, Started: started})
	if err != nil {
		t.Fatal(err)
	}
	e.Paths = append(e.Paths, answered, extra, keep[3])
	if err := j.Record(e); err != nil {
		t.Fatal(err)
	}
	// A second attempt keeps the first one's start and paths.
	e2, err := j.Begin(Entry{UID: "0b5c-uid", Namespace: "shop", Pod: "db-0", Containers: []string{"db"}, Started: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if !e2.Started.Equal(started) || len(e2.Paths) != 3 || len(e2.Containers) != 2 {
		t.Fatalf("second attempt's entry %+v lost the first attempt's start, paths or containers", e2)
	}
	// A journal file the agent did not write is reported, not trusted.
	if err := os.WriteFile(filepath.Join(j.Dir, "other.json"), []byte(`{"uid":"x","paths":["/etc/passwd"]}`), 0o600); err != nil {
		t.Fatal(err)
	}

	deleted, err := j.Sweep(dir)
	if err == nil {
		t.Errorf("a foreign journal file was not reported")
	}
	sort.Strings(deleted)
	want := []string{answered, extra, unanswered}
	sort.Strings(want)
	if len(deleted) != len(want) {
		t.Fatalf("deleted %v, want %v", deleted, want)
	}
	for i := range want {
		if real, _ := filepath.EvalSymlinks(filepath.Dir(want[i])); deleted[i] != filepath.Join(real, filepath.Base(want[i])) {
			t.Errorf("deleted %s, want %s", deleted[i], want[i])
		}
		if _, err := os.Stat(want[i]); !os.IsNotExist(err) {
			t.Errorf("%s is still there", want[i])
		}
	}
	for _, p := range keep {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was deleted: %v", p, err)
		}
	}
	if entries, _ := j.Entries(); len(entries) != 0 {
		t.Errorf("swept entries remain: %+v", entries)
	}
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Fatal(err)
	}
}

func TestSecurityJournalRefusesUnsafeUIDs(t *testing.T) {
	j := &Journal{Dir: t.TempDir()}
	for _, uid := range []string{"", "../x", "a/b", "x.json"} {
		if err := j.Record(Entry{UID: uid}); err == nil {
			t.Errorf("UID %q named a journal file", uid)
		}
	}
}

// An entry with pushed images outlives the sweep (its archives deleted,
// its paths dropped) until the agent reports the images; ForgetStale
// drops it only once it is older than the cutoff, and returns it.
func TestJournalKeepsPushedImagesUntilReported(t *testing.T) {
	dir := t.TempDir()
	started := time.Now().Add(-time.Minute).Truncate(time.Second)
	archivePath := writeArchive(t, dir, "checkpoint-db-0_shop-db-"+started.UTC().Format(time.RFC3339)+".tar", started)
	j := &Journal{Dir: filepath.Join(t.TempDir(), "journal")}
	image := PushedImage{Container: "db", Image: "registry.example.com/shop/db@sha256:" + strings.Repeat("ab", 32), Attempt: 1}
	e, err := j.Begin(Entry{UID: "with-image", Namespace: "shop", Pod: "db-0", Checkpoint: "db-0-1", Containers: []string{"db"}, Started: started})
	if err != nil {
		t.Fatal(err)
	}
	e.Paths, e.Images = []string{archivePath}, []PushedImage{image}
	if err := j.Record(e); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Begin(Entry{UID: "no-image", Namespace: "shop", Pod: "db-1", Started: started}); err != nil {
		t.Fatal(err)
	}
	// A next attempt's Begin keeps the images of the earlier one.
	if again, err := j.Begin(Entry{UID: "with-image", Namespace: "shop", Pod: "db-0", Started: time.Now()}); err != nil || len(again.Images) != 1 {
		t.Fatalf("Begin lost the pushed images: %+v, %v", again.Images, err)
	}
	if _, err := j.Sweep(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(archivePath); !os.IsNotExist(err) {
		t.Errorf("the archive survived the sweep: %v", err)
	}
	kept, ok := j.Lookup("with-image")
	if !ok || len(kept.Images) != 1 || kept.Images[0] != image || len(kept.Paths) != 0 {
		t.Fatalf("after the sweep the entry is %+v (found %v), want its image and no paths", kept, ok)
	}
	if _, ok := j.Lookup("no-image"); ok {
		t.Errorf("an entry without images survived the sweep")
	}
	if stale, err := j.ForgetStale(started); err != nil || len(stale) != 0 {
		t.Fatalf("ForgetStale(started) dropped %+v, %v: the entry is not older than the cutoff", stale, err)
	}
	stale, err := j.ForgetStale(time.Now())
	if err != nil || len(stale) != 1 || stale[0].Images[0] != image || stale[0].Checkpoint != "db-0-1" {
		t.Fatalf("ForgetStale(now) = %+v, %v; want the entry with its image", stale, err)
	}
	if _, ok := j.Lookup("with-image"); ok {
		t.Errorf("a stale entry was returned but not forgotten")
	}
}
