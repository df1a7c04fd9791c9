package builder

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Errors a caller can tell apart with errors.Is, whichever backend failed:
// they become the reason of the Checkpoint's condition.
var (
	ErrInvalidRequest      = errors.New("invalid build request")
	ErrUnauthorized        = errors.New("registry unauthorized: check the registry Secret's credentials")
	ErrRegistryUnreachable = errors.New("registry unreachable")
	ErrStorage             = errors.New("image storage error")
)

// classifyGo maps a go-containerregistry error onto the errors above.
func classifyGo(err error) error {
	if err == nil {
		return nil
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return ErrUnauthorized
		}
		for _, d := range te.Errors {
			if d.Code == transport.UnauthorizedErrorCode || d.Code == transport.DeniedErrorCode {
				return ErrUnauthorized
			}
		}
		return nil
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &oe) || errors.Is(err, syscall.ECONNREFUSED) || (errors.As(err, &ne) && ne.Timeout()) {
		return ErrRegistryUnreachable
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ErrRegistryUnreachable
	}
	return nil
}

// classifyBuildah maps buildah's stderr (containers/image wording) onto the
// errors above; nil when nothing matches. Storage wording is only trusted
// for local steps: a push error also names containers-storage.
func classifyBuildah(step, stderr string) error {
	s := strings.ToLower(stderr)
	switch {
	case strings.Contains(s, "unauthorized"), strings.Contains(s, "authentication required"),
		strings.Contains(s, "requested access to the resource is denied"):
		return ErrUnauthorized
	case strings.Contains(s, "connection refused"), strings.Contains(s, "no such host"),
		strings.Contains(s, "i/o timeout"), strings.Contains(s, "network is unreachable"),
		strings.Contains(s, "connection reset"), strings.Contains(s, "no route to host"):
		return ErrRegistryUnreachable
	case step != "push" && (strings.Contains(s, "no space left") || strings.Contains(s, "read-only file system") ||
		strings.Contains(s, "storage") || strings.Contains(s, "overlay") || strings.Contains(s, "layer not known") ||
		strings.Contains(s, "database is locked")):
		return ErrStorage
	case strings.Contains(s, "no space left"):
		return ErrStorage
	}
	return nil
}
