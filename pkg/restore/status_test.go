package restore

import (
	"reflect"
	"strings"
	"testing"
)

func TestStatusFromAnnotations(t *testing.T) {
	images := `{"app":"` + ckptApp + `"}`
	cases := []struct {
		name string
		in   map[string]string
		want *MigrationStatus
	}{
		{"none", map[string]string{"team": "x"}, nil},
		{"all", map[string]string{
			AnnotationLatestCheckpoint:       "db-0-ckpt-7",
			AnnotationLatestCheckpointImages: images,
			AnnotationLatestCheckpointTime:   "2026-11-26T07:00:00Z",
			AnnotationRestoredFrom:           "db-0-ckpt-6",
			"other":                          "ignored",
		}, &MigrationStatus{LatestCheckpoint: "db-0-ckpt-7", LatestCheckpointImages: map[string]string{"app": ckptApp},
			LatestCheckpointTime: "2026-11-26T07:00:00Z", RestoredFrom: "db-0-ckpt-6"}},
		{"malformed values are listed, not fatal", map[string]string{
			AnnotationLatestCheckpoint:       strings.Repeat("x", 64),
			AnnotationLatestCheckpointImages: `{"app":"repo/app:latest"}`,
			AnnotationLatestCheckpointTime:   "yesterday",
			AnnotationRestoredFrom:           "Not_A_Name",
		}, &MigrationStatus{Ignored: []string{AnnotationLatestCheckpoint, AnnotationLatestCheckpointImages,
			AnnotationLatestCheckpointTime, AnnotationRestoredFrom}}},
		{"non-JSON images", map[string]string{AnnotationLatestCheckpoint: "c", AnnotationLatestCheckpointImages: "app="},
			&MigrationStatus{LatestCheckpoint: "c", Ignored: []string{AnnotationLatestCheckpointImages}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := StatusFromAnnotations(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
