package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// apiRequests counts an API server's requests by verb and resource, from
// its apiserver_request_total. The round's report divides them by the
// checkpoints: it says which objects a checkpoint costs Karmada, which is
// where a faster round has to save.
type apiRequests map[string]float64

var requestLabel = regexp.MustCompile(`(\w+)="([^"]*)"`)

// readAPIRequests scrapes cfg's API server. An error is reported and gives
// an empty count: the breakdown is a diagnosis, not a result.
func readAPIRequests(ctx context.Context, name string, cfg *rest.Config) apiRequests {
	out, err := scrapeAPIRequests(ctx, cfg)
	if err != nil {
		fmt.Fprintf(os.Stderr, "requests of %s: %v\n", name, err)
		return apiRequests{}
	}
	return out
}

func scrapeAPIRequests(ctx context.Context, cfg *rest.Config) (apiRequests, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	raw, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return nil, err
	}
	series, err := parseSeries(string(raw))
	if err != nil {
		return nil, err
	}
	out := apiRequests{}
	for s, v := range series {
		if !strings.HasPrefix(s, "apiserver_request_total{") {
			continue
		}
		labels := map[string]string{}
		for _, m := range requestLabel.FindAllStringSubmatch(s, -1) {
			labels[m[1]] = m[2]
		}
		if labels["verb"] == "WATCH" {
			continue
		}
		key := labels["verb"] + " " + labels["resource"]
		if labels["subresource"] != "" {
			key += "/" + labels["subresource"]
		}
		out[key] += v
	}
	return out, nil
}

// reportAPIRequests prints the requests per checkpoint between two counts,
// largest first; those under 0.05 a checkpoint are summed as "other".
func reportAPIRequests(name string, before, after apiRequests, checkpoints int) {
	type share struct {
		key string
		n   float64
	}
	var shares []share
	var total, other float64
	for k, v := range after {
		d := (v - before[k]) / float64(checkpoints)
		if d <= 0 {
			continue
		}
		total += d
		if d < 0.05 {
			other += d
			continue
		}
		shares = append(shares, share{k, d})
	}
	sort.Slice(shares, func(i, j int) bool { return shares[i].n > shares[j].n })
	parts := make([]string, 0, len(shares)+1)
	for _, s := range shares {
		parts = append(parts, fmt.Sprintf("%s %.2f", s.key, s.n))
	}
	parts = append(parts, fmt.Sprintf("other %.2f", other))
	fmt.Fprintf(os.Stderr, "round 1 requests of %s: %.1f a checkpoint (%s)\n", name, total, strings.Join(parts, ", "))
}
