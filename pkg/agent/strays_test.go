package agent

import (
	"strings"
	"testing"

	"github.com/stateshift/stateshift/pkg/agent/archive"
	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
)

// A builder's answer that is not a sha256 manifest digest is never turned
// into a recorded image (it could name another repository).
func TestPushedImageRefusesOtherDigests(t *testing.T) {
	repo := "registry.example.com/shop/db"
	good := "sha256:" + strings.Repeat("ab", 32)
	if img, err := pushedImage(repo, good); err != nil || img != repo+"@"+good {
		t.Fatalf("pushedImage(%q) = %q, %v", good, img, err)
	}
	for _, d := range []string{"", "sha256:abc", "sha512:" + strings.Repeat("ab", 64), good + "@evil.example.com/x", "x/../" + good,
		"sha256:" + strings.Repeat("AB", 32)} {
		if img, err := pushedImage(repo, d); err == nil {
			t.Errorf("pushedImage(%q) = %q, want an error", d, img)
		}
	}
}

// Only images under the Checkpoint's repository by digest become stray
// images; the result and images already recorded are not added again,
// and an earlier record keeps its reason. The current attempt's images
// get its failure reason, unreported ones of earlier attempts Interrupted.
func TestAddStrayImagesOnlyUnderTheRepository(t *testing.T) {
	repo := "registry.example.com/shop/db"
	img := func(repo, hex string) string { return repo + "@sha256:" + strings.Repeat(hex, 32) }
	cp := &v1alpha1.Checkpoint{Spec: v1alpha1.CheckpointSpec{Repository: repo}}
	cp.Status.Attempts = 3
	cp.Status.Containers = []v1alpha1.ContainerCheckpoint{{Name: "db", Image: img(repo, "01")}}
	cp.Status.StrayImages = []v1alpha1.StrayImage{{Container: "db", Image: img(repo, "02"), Attempt: 1, Reason: "VerifyFailed"}}
	pushed := []archive.PushedImage{
		{Container: "db", Image: img(repo, "01"), Attempt: 3},                        // the result
		{Container: "db", Image: img(repo, "02"), Attempt: 1},                        // recorded before
		{Container: "db", Image: img(repo, "03"), Attempt: 2},                        // an earlier attempt's, never reported
		{Container: "db", Image: img(repo, "07"), Attempt: 3},                        // this attempt's
		{Container: "db", Image: img("registry.example.com/shop/dbx", "04")},         // a repository that extends it
		{Container: "db", Image: img("registry.example.com/other-tenant/db", "05")},  // another repository
		{Container: "db", Image: repo + ":latest"},                                   // not by digest
		{Container: "db", Image: repo + "@sha256:" + strings.Repeat("06", 32) + "x"}, // not a digest
	}
	if n := addStrayImages(cp, pushed, "PushFailed"); n != 2 {
		t.Fatalf("added %d, want 2: %+v", n, cp.Status.StrayImages)
	}
	want := []v1alpha1.StrayImage{
		{Container: "db", Image: img(repo, "02"), Attempt: 1, Reason: "VerifyFailed"},
		{Container: "db", Image: img(repo, "03"), Attempt: 2, Reason: reasonInterrupted},
		{Container: "db", Image: img(repo, "07"), Attempt: 3, Reason: "PushFailed"},
	}
	if len(cp.Status.StrayImages) != len(want) {
		t.Fatalf("stray images %+v, want %+v", cp.Status.StrayImages, want)
	}
	for i := range want {
		if cp.Status.StrayImages[i] != want[i] {
			t.Errorf("stray image %d = %+v, want %+v", i, cp.Status.StrayImages[i], want[i])
		}
	}
}
