package agent

import (
	"errors"

	"github.com/stateshift/stateshift/pkg/agent/kubelet"
)

// failure is an attempt's error with a reason for conditions, Events and
// metrics, and whether a later attempt may succeed without anyone acting.
type failure struct {
	reason    string
	permanent bool
	err       error
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

func fail(reason string, err error) *failure { return &failure{reason: reason, err: err} }

func permanent(reason string, err error) *failure {
	return &failure{reason: reason, permanent: true, err: err}
}

// asFailure classifies any error from an attempt.
func asFailure(err error) *failure {
	var f *failure
	if errors.As(err, &f) {
		return f
	}
	var ke *kubelet.Error
	if errors.As(err, &ke) {
		return &failure{reason: string(ke.Reason), permanent: !ke.Retryable(), err: err}
	}
	return fail("Error", err)
}

// Reasons of failures that do not come from the kubelet.
const (
	reasonPodNotFound     = "PodNotFound"
	reasonContainer       = "ContainerNotFound"
	reasonNode            = "NodeAddressUnknown"
	reasonArchiveRejected = "ArchiveRejected"
	reasonArchiveInvalid  = "ArchiveInvalid"
	reasonCredentials     = "CredentialsInvalid"
	reasonBuilder         = "BuilderUnavailable"
	reasonPush            = "PushFailed"
	reasonVerify          = "VerifyFailed"
	reasonPushTimeout     = "PushTimeout"
	reasonVerifyTimeout   = "VerifyTimeout"
	reasonJournal         = "JournalFailed"
	// A registry Secret that does not serve the Checkpoint's namespace.
	reasonCredentialsNotAllowed = "CredentialsNotAllowed"
)
