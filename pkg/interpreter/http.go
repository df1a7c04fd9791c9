package interpreter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
	"github.com/karmada-io/karmada/pkg/util/gclient"
	webhook "github.com/karmada-io/karmada/pkg/webhook/interpreter"
	"k8s.io/klog/v2"
)

// Path is where the webhook serves; the ResourceInterpreterWebhookConfiguration
// points at it.
const Path = "/interpreter"

// MaxRequestBytes bounds a request body. It is Karmada's own bound: the
// library reads at most webhook.MaxRespBodyLength (1 MiB) and would
// silently truncate a larger body into a confusing decode error, so larger
// bodies are refused here with a clear message first.
const MaxRequestBytes = webhook.MaxRespBodyLength

// NewHandler serves the interpreter protocol with Karmada's library
// (decoding, content-type check, UID echo, response encoding), wrapped to
// bound the body and count requests the library rejects before Handle.
func NewHandler() http.Handler {
	wh := webhook.NewWebhook(&Interpreter{}, webhook.NewDecoder(gclient.NewSchema()))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
			if err != nil {
				var tooLarge *http.MaxBytesError
				code := int32(http.StatusBadRequest)
				if errors.As(err, &tooLarge) {
					code = http.StatusRequestEntityTooLarge
					err = fmt.Errorf("request body exceeds %d bytes", MaxRequestBytes)
				}
				rejected()
				writeError(w, code, err)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		handled := false
		wh.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), handledKey{}, &handled)))
		if !handled {
			rejected()
		}
	})
}

// writeError answers like Karmada's library does for its own rejections.
func writeError(w http.ResponseWriter, code int32, err error) {
	resp := webhook.Errored(code, err)
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(configv1alpha1.ResourceInterpreterContext{Response: &resp.ResourceInterpreterResponse}); err != nil {
		klog.ErrorS(err, "Write interpreter error response")
	}
}
