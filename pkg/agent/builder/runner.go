package builder

import (
	"bytes"
	"context"
	"os/exec"
	"syscall"
	"time"
)

// Command is one program run: argv and the full environment it gets.
type Command struct {
	Args []string // Args[0] is the program
	Env  []string
}

// Runner runs a Command and returns its stdout and stderr. It is a field of
// Buildah so tests can see (and record) every argv and environment.
type Runner func(ctx context.Context, cmd Command) (stdout, stderr []byte, err error)

// ExecRunner runs the command as a child process, killed with its process
// group when ctx ends so a stuck buildah cannot outlive the build.
func ExecRunner(ctx context.Context, c Command) ([]byte, []byte, error) {
	cmd := exec.CommandContext(ctx, c.Args[0], c.Args[1:]...)
	cmd.Env = c.Env
	// Pdeathsig: an agent killed with SIGKILL takes its buildah with it
	// rather than leaving a push running with the archive and auth file.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.Bytes(), errb.Bytes(), err
}
