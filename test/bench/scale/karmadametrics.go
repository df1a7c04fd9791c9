package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// What a storm costs Karmada, from its own metrics: the taint manager's
// evictions (how long each took and how long each waited in its queue)
// and karmada-scheduler's placements. A slow storm waits on one of them;
// the controller manager logs neither at its default verbosity.
var karmadaMetricsEndpoints = map[string]string{
	"karmada-controller-manager": "http://127.0.0.1:18081/metrics", // hack/local/lib.sh KARMADA_CM_METRICS_PORT
	"karmada-scheduler":          "http://127.0.0.1:18082/metrics", // KARMADA_SCHEDULER_METRICS_PORT
}

// stormSeries says which series of a storm's metrics are reported.
func stormSeries(series string) bool {
	for _, prefix := range []string{
		"eviction_processing_latency_seconds_sum", "eviction_processing_latency_seconds_count",
		"eviction_processing_total",
		"karmada_scheduler_e2e_scheduling_duration_seconds_sum", "karmada_scheduler_e2e_scheduling_duration_seconds_count",
		"karmada_scheduler_schedule_attempts_total", "karmada_scheduler_queue_incoming_bindings_total",
		// Where a placement's time goes: the algorithm's steps against
		// the writes after it (e2e less the algorithm).
		"karmada_scheduler_scheduling_algorithm_duration_seconds_sum", "karmada_scheduler_scheduling_algorithm_duration_seconds_count",
		"rest_client_requests_total",
	} {
		if strings.HasPrefix(series, prefix) {
			return true
		}
	}
	// The eviction queue's and the scheduler's waits (client-go workqueue
	// metrics, by queue name).
	return strings.HasPrefix(series, "workqueue_queue_duration_seconds_") &&
		(strings.Contains(series, `name="binding-eviction"`) || strings.Contains(series, `name="scheduler-queue"`)) &&
		!strings.Contains(series, "_bucket")
}

// metricsSnapshot holds each component's series (name{labels} -> value).
type metricsSnapshot map[string]map[string]float64

// snapshotKarmadaMetrics scrapes the components' metrics and keeps the raw
// text in the run folder (logs/metrics-<when>-<component>.txt) for a
// closer look after the run. A component that does not answer is left
// out: the report is a diagnosis, not a result.
func snapshotKarmadaMetrics(ctx context.Context, runDir, when string) metricsSnapshot {
	snap := metricsSnapshot{}
	for component, url := range karmadaMetricsEndpoints {
		text, err := scrapeText(ctx, url)
		if err != nil {
			fmt.Fprintf(os.Stderr, "storm metrics: %s: %v\n", component, err)
			continue
		}
		_ = os.WriteFile(filepath.Join(runDir, "logs", "metrics-"+when+"-"+component+".txt"), []byte(text), 0o644)
		series, err := parseSeries(text)
		if err != nil {
			fmt.Fprintf(os.Stderr, "storm metrics: %s: %v\n", component, err)
			continue
		}
		snap[component] = series
	}
	return snap
}

func scrapeText(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s", url, resp.Status)
	}
	var sb strings.Builder
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		sb.WriteString(sc.Text())
		sb.WriteByte('\n')
	}
	return sb.String(), sc.Err()
}

// parseSeries reads Prometheus text exposition lines "series value"; a
// line that is neither a comment nor that is an error.
func parseSeries(text string) (map[string]float64, error) {
	out := map[string]float64{}
	for _, line := range strings.Split(text, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i <= 0 {
			return nil, fmt.Errorf("metric line %q: no value", line)
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metric line %q: %w", line, err)
		}
		out[line[:i]] = v
	}
	return out, nil
}

// stormMetricsReport prints, per component, the storm's series that
// changed between the two snapshots, and the mean of each latency
// (sum/count) over the storm.
func stormMetricsReport(before, after metricsSnapshot) {
	components := make([]string, 0, len(after))
	for c := range after {
		components = append(components, c)
	}
	sort.Strings(components)
	for _, c := range components {
		var lines []string
		for series, v := range after[c] {
			if !stormSeries(series) {
				continue
			}
			if d := v - before[c][series]; d != 0 {
				lines = append(lines, fmt.Sprintf("  %s +%g", series, d))
			}
			if strings.Contains(series, "_sum") {
				countSeries := strings.Replace(series, "_sum", "_count", 1)
				if n := after[c][countSeries] - before[c][countSeries]; n > 0 {
					lines = append(lines, fmt.Sprintf("  mean %s %.3fs over %g", strings.Replace(series, "_sum", "", 1), (v-before[c][series])/n, n))
				}
			}
		}
		sort.Strings(lines)
		fmt.Fprintf(os.Stderr, "storm metrics of %s (change during the storm):\n%s\n", c, strings.Join(lines, "\n"))
	}
}
