package nodesim

import (
	"flag"
	"os"
	"testing"

	"k8s.io/klog/v2"
)

// TestMain registers klog's flags so `-args -v=2` shows the node's log.
func TestMain(m *testing.M) {
	klog.InitFlags(flag.CommandLine)
	os.Exit(m.Run())
}
