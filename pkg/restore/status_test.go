package restore

import (
	"reflect"
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
		{"restored", map[string]string{AnnotationRestoredFrom: "db-0-ckpt-6", "other": "ignored"}, &MigrationStatus{RestoredFrom: "db-0-ckpt-6"}},
		{"malformed values are listed, not fatal", map[string]string{AnnotationRestoredFrom: "Not_A_Name"},
			&MigrationStatus{Ignored: []string{AnnotationRestoredFrom}}},
		// Nothing writes the latest-checkpoint keys: they are not reflected
		// (issue 11 defect 9), so a status never claims them.
		{"latest checkpoint keys are not reflected", map[string]string{
			AnnotationLatestCheckpoint: "db-0-ckpt-7", AnnotationLatestCheckpointImages: images, AnnotationLatestCheckpointTime: "2026-11-26T07:00:00Z",
		}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := StatusFromAnnotations(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
