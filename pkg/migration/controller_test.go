package migration

import (
	"strings"
	"testing"
)

func TestIsControllerEnabled(t *testing.T) {
	cases := []struct {
		list []string
		on   string // the enabled controllers, sorted
	}{
		{nil, "checkpointdelivery,checkpointplacement,checkpoints,migrations,movedetection,restoreplan"},
		{[]string{"*"}, "checkpointdelivery,checkpointplacement,checkpoints,migrations,movedetection,restoreplan"},
		{[]string{"*", "-movedetection"}, "checkpointdelivery,checkpointplacement,checkpoints,migrations,restoreplan"},
		{[]string{"checkpoints", "restoreplan"}, "checkpoints,restoreplan"},
		{[]string{"-checkpoints"}, ""},
	}
	for _, tc := range cases {
		var on []string
		for _, n := range ControllerNames() {
			if IsControllerEnabled(n, tc.list) {
				on = append(on, n)
			}
		}
		if got := strings.Join(on, ","); got != tc.on {
			t.Errorf("%v: enabled %q, want %q", tc.list, got, tc.on)
		}
	}
	if err := ValidateControllers([]string{"*", "-restorplan"}); err == nil || !strings.Contains(err.Error(), "restorplan") {
		t.Errorf("a misspelt controller: %v", err)
	}
}
