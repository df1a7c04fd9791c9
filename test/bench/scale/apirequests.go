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
// its apiserver_request_total, and the time it spent serving them (from
// apiserver_request_duration_seconds). The round's report divides them by
// the checkpoints: it says which objects a checkpoint costs Karmada, which
// is where a faster round has to save; the storm's says how slowly the
// server answered the scheduler's and the taint manager's writes.
type apiRequests struct {
	count, seconds map[string]float64
}

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

// requestKey is "VERB resource[/subresource]" of a series' labels.
func requestKey(series string) string {
	labels := map[string]string{}
	for _, m := range requestLabel.FindAllStringSubmatch(series, -1) {
		labels[m[1]] = m[2]
	}
	key := labels["verb"] + " " + labels["resource"]
	if labels["subresource"] != "" {
		key += "/" + labels["subresource"]
	}
	return key
}

func scrapeAPIRequests(ctx context.Context, cfg *rest.Config) (apiRequests, error) {
	out := apiRequests{count: map[string]float64{}, seconds: map[string]float64{}}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return out, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	raw, err := cs.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return out, err
	}
	series, err := parseSeries(string(raw))
	if err != nil {
		return out, err
	}
	for s, v := range series {
		switch {
		case strings.HasPrefix(s, "apiserver_request_total{"):
			out.count[requestKey(s)] += v
		case strings.HasPrefix(s, "apiserver_request_duration_seconds_sum{"):
			out.seconds[requestKey(s)] += v
		}
	}
	return out, nil
}

// reportAPIRequests prints the requests per unit (a checkpoint, a moved
// workload) between two counts, largest first, each with the mean time
// the server took to answer it; those under 0.05 a unit are summed as
// "other".
func reportAPIRequests(what, name string, before, after apiRequests, units int, unit string) {
	type share struct {
		key     string
		n, mean float64
	}
	var shares []share
	var total, other float64
	for k, v := range after.count {
		n := v - before.count[k]
		d := n / float64(units)
		if d <= 0 {
			continue
		}
		total += d
		if d < 0.05 {
			other += d
			continue
		}
		shares = append(shares, share{k, d, (after.seconds[k] - before.seconds[k]) / n})
	}
	sort.Slice(shares, func(i, j int) bool { return shares[i].n > shares[j].n })
	parts := make([]string, 0, len(shares)+1)
	for _, s := range shares {
		parts = append(parts, fmt.Sprintf("%s %.2f (%.0f ms)", s.key, s.n, 1000*s.mean))
	}
	parts = append(parts, fmt.Sprintf("other %.2f", other))
	fmt.Fprintf(os.Stderr, "%s requests of %s: %.1f %s (%s)\n", what, name, total, unit, strings.Join(parts, ", "))
}
