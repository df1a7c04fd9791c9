package agent_test

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain removes the checkpoint-agent binary that buildAgent built for
// this test binary (~50 MB in /tmp per run otherwise).
func TestMain(m *testing.M) {
	code := m.Run()
	if agentBinary.path != "" {
		_ = os.RemoveAll(filepath.Dir(agentBinary.path))
	}
	os.Exit(code)
}
