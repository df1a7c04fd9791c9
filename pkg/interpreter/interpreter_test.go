package interpreter

import (
	"bytes"
	"strings"
	"testing"

	configv1alpha1 "github.com/karmada-io/karmada/pkg/apis/config/v1alpha1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func TestBadInput(t *testing.T) {
	sts := toU(t, statefulSet())
	valid := func() configv1alpha1.ResourceInterpreterRequest {
		return request(t, configv1alpha1.InterpreterOperationInterpretStatus, sts)
	}
	with := func(edit func(*configv1alpha1.ResourceInterpreterRequest)) []byte {
		r := valid()
		edit(&r)
		return body(t, r)
	}
	huge := body(t, valid())
	huge = append(huge[:len(huge)-1], []byte(`,"padding":"`+strings.Repeat("x", MaxRequestBytes)+`"}`)...)

	cases := []struct {
		name        string
		body        []byte
		contentType string
		code        int32
		message     string
	}{
		{"not JSON", []byte("this is not json"), "application/json", 400, ""},
		{"empty body", nil, "application/json", 400, ""},
		{"truncated JSON", body(t, valid())[:100], "application/json", 400, ""},
		{"wrong content type", body(t, valid()), "text/plain", 400, "contentType=text/plain"},
		{"unknown operation", with(func(r *configv1alpha1.ResourceInterpreterRequest) { r.Operation = "Explode" }), "application/json", 400, `unknown operation "Explode"`},
		{"operation Karmada has but we do not serve", with(func(r *configv1alpha1.ResourceInterpreterRequest) {
			r.Operation = configv1alpha1.InterpreterOperationInterpretComponent
		}), "application/json", 501, "not served"},
		{"unknown kind", with(func(r *configv1alpha1.ResourceInterpreterRequest) {
			r.Kind = metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DaemonSet"}
		}), "application/json", 501, "not served for apps/v1, Kind=DaemonSet"},
		{"object of another kind", with(func(r *configv1alpha1.ResourceInterpreterRequest) {
			r.Object = raw(t, toU(t, deployment()))
		}), "application/json", 400, "object is apps/v1, Kind=Deployment, request is for apps/v1, Kind=StatefulSet"},
		{"no object", with(func(r *configv1alpha1.ResourceInterpreterRequest) { r.Object = runtime.RawExtension{} }), "application/json", 400, "no content"},
		{"empty object", with(func(r *configv1alpha1.ResourceInterpreterRequest) { r.Object = runtime.RawExtension{Raw: []byte("{}")} }), "application/json", 400, "without apiVersion and kind"},
		{"object not an object", []byte(`{"apiVersion":"config.karmada.io/v1alpha1","kind":"ResourceInterpreterContext","request":{"uid":"u","kind":{"group":"apps","version":"v1","kind":"StatefulSet"},"operation":"InterpretStatus","object":[1,2]}}`), "application/json", 400, "decode object"},
		{"missing uid", with(func(r *configv1alpha1.ResourceInterpreterRequest) { r.UID = "" }), "application/json", 400, "no uid"},
		{"no request", []byte(`{"apiVersion":"config.karmada.io/v1alpha1","kind":"ResourceInterpreterContext"}`), "application/json", 400, "no uid"},
		{"body over the bound", huge, "application/json", 413, "exceeds"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := post(t, tc.body, tc.contentType)
			if resp.Successful || resp.Status == nil || resp.Status.Code != tc.code || resp.Status.Message == "" {
				t.Fatalf("response %+v, status %+v; want code %d", resp, resp.Status, tc.code)
			}
			if !strings.Contains(resp.Status.Message, tc.message) {
				t.Fatalf("message %q, want it to contain %q", resp.Status.Message, tc.message)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	success := requestsTotal.WithLabelValues("InterpretStatus", "StatefulSet", "success")
	failure := requestsTotal.WithLabelValues("other", "StatefulSet", "error")
	other := requestsTotal.WithLabelValues("InterpretStatus", "other", "error")
	reject := requestsTotal.WithLabelValues("unknown", "unknown", "rejected")
	s0, f0, o0, r0 := testutil.ToFloat64(success), testutil.ToFloat64(failure), testutil.ToFloat64(other), testutil.ToFloat64(reject)
	h0 := samples(t, "InterpretStatus", "StatefulSet")

	req := request(t, configv1alpha1.InterpreterOperationInterpretStatus, toU(t, statefulSet()))
	call(t, req)
	bad := req
	bad.Operation = "Explode"
	post(t, body(t, bad), "application/json")
	bad = req
	bad.Kind.Kind = "NotAKind"
	post(t, body(t, bad), "application/json")
	post(t, []byte("garbage"), "application/json")
	post(t, bytes.Repeat([]byte("x"), MaxRequestBytes+1), "application/json")

	if d := testutil.ToFloat64(success) - s0; d != 1 {
		t.Errorf("success +%v", d)
	}
	if d := testutil.ToFloat64(failure) - f0; d != 1 {
		t.Errorf("unknown operation +%v", d)
	}
	if d := testutil.ToFloat64(other) - o0; d != 1 {
		t.Errorf("unknown kind +%v", d)
	}
	if d := testutil.ToFloat64(reject) - r0; d != 2 {
		t.Errorf("rejected +%v", d)
	}
	if d := samples(t, "InterpretStatus", "StatefulSet") - h0; d != 1 {
		t.Errorf("latency samples +%d", d)
	}
}

func samples(t testing.TB, operation, kind string) uint64 {
	var m dto.Metric
	if err := requestDuration.WithLabelValues(operation, kind).(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}
