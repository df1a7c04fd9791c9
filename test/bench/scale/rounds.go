package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/stateshift/stateshift/pkg/apis/stateshift/v1alpha1"
	"github.com/stateshift/stateshift/test/e2e/framework"
)

// ageSample is how often the steady state samples the checkpoint ages.
const ageSample = 10 * time.Second

type scaleResult struct {
	round, maxAge, rssMiB, cpuCores, requestsPerWorkload float64
}

// measureRounds protects every workload and measures the first round and
// one interval of steady state after it.
func (b *bench) measureRounds(ctx context.Context) (scaleResult, error) {
	var r scaleResult
	ctrl, err := newProcess(b.env.RunDir, "interpreter-webhook")
	if err != nil {
		return r, err
	}
	if err := b.watchCheckpoints(ctx); err != nil {
		return r, err
	}
	cpuAtStart := readCPUUse(b.env.RunDir)
	karmadaAtStart := readAPIRequests(ctx, "karmada-apiserver", b.env.KarmadaConfig)
	member2AtStart := readAPIRequests(ctx, "member2-apiserver", b.env.MemberConfigs["member2"])
	start := time.Now()
	var policies []client.Object
	for i := 0; i < b.c.namespaces; i++ {
		policies = append(policies, b.policy(b.namespace(i)))
	}
	if err := b.createAll(ctx, policies); err != nil {
		return r, err
	}
	var roundEnd time.Time
	err = poll(ctx, b.c.interval+10*time.Minute, 5*time.Second, "every workload has a verified checkpoint", func(ctx context.Context) (bool, string, error) {
		latest, err := b.latestVerified(ctx)
		if err != nil {
			return false, "", err
		}
		for _, t := range latest {
			if t.After(roundEnd) {
				roundEnd = t
			}
		}
		return len(latest) == len(b.names), fmt.Sprintf("%d of %d verified", len(latest), len(b.names)), nil
	})
	if err != nil {
		return r, err
	}
	r.round = roundEnd.Sub(start).Seconds()
	fmt.Fprintf(os.Stderr, "round 1: %d verified checkpoints in %.1fs\n", len(b.names), r.round)
	// The poll saw the round end up to 5 s late: the CPU is over that span.
	reportCPU("round 1", cpuAtStart, readCPUUse(b.env.RunDir), len(b.names), "a checkpoint", time.Since(start).Seconds())
	reportAPIRequests("round 1", "karmada-apiserver", karmadaAtStart, readAPIRequests(ctx, "karmada-apiserver", b.env.KarmadaConfig), len(b.names), "a checkpoint")
	reportAPIRequests("round 1", "member2-apiserver", member2AtStart, readAPIRequests(ctx, "member2-apiserver", b.env.MemberConfigs["member2"]), len(b.names), "a checkpoint")
	if err := b.steadyState(ctx, ctrl, start, &r); err != nil {
		return r, err
	}
	return r, nil
}

// steadyState runs one interval after the first round: the quiet time
// before the second round gives the controller's CPU, the whole interval
// its requests per workload, every sample the largest checkpoint age.
func (b *bench) steadyState(ctx context.Context, ctrl *process, start time.Time, r *scaleResult) error {
	from := time.Now()
	reqs0, err := controllerRequests(ctx)
	if err != nil {
		return err
	}
	cpu0, err := ctrl.cpuSeconds()
	if err != nil {
		return err
	}
	// The figure is the peak in steady state: the high-water mark
	// starts again here, after the deploy and the first round (printed
	// too, from the mark before the reset).
	deployPeak, err := ctrl.peakRSSMiB()
	if err != nil {
		return err
	}
	if err := ctrl.resetPeakRSS(); err != nil {
		return err
	}
	quietEnd := start.Add(b.c.interval)
	cpuDone := false
	for end := from.Add(b.c.interval); time.Now().Before(end); {
		if !cpuDone && !time.Now().Before(quietEnd) {
			r.cpuCores, err = ctrl.cpuSince(cpu0, from)
			if err != nil {
				return err
			}
			cpuDone = true
		}
		age, err := b.maxAge(ctx)
		if err != nil {
			return err
		}
		r.maxAge = max(r.maxAge, age)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(ageSample):
		}
	}
	reqs1, err := controllerRequests(ctx)
	if err != nil {
		return err
	}
	r.requestsPerWorkload = (reqs1 - reqs0) / float64(len(b.names))
	all, err := ctrl.cpuSince(cpu0, from)
	if err != nil {
		return err
	}
	if !cpuDone || quietEnd.Sub(from) < 30*time.Second {
		// The first round took (almost) the whole interval: no quiet
		// time; the mean over the interval is the honest figure.
		r.cpuCores = all
	}
	fmt.Fprintf(os.Stderr, "steady state: cpu %.3f cores between rounds, %.3f over the interval; %.0f requests\n", r.cpuCores, all, reqs1-reqs0)
	if r.rssMiB, err = ctrl.peakRSSMiB(); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "controller RSS: peak %.0f MiB in steady state; %.0f MiB through the deploy and the first round\n", r.rssMiB, deployPeak)
	return nil
}

// watchCheckpoints starts the cache of Checkpoints latestVerified reads
// (stopped with ctx).
func (b *bench) watchCheckpoints(ctx context.Context) error {
	c, err := cache.New(b.env.KarmadaConfig, cache.Options{Scheme: b.env.Karmada.Scheme()})
	if err != nil {
		return err
	}
	if _, err := c.GetInformer(ctx, &v1alpha1.Checkpoint{}); err != nil {
		return err
	}
	go func() { _ = c.Start(ctx) }()
	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if !c.WaitForCacheSync(sctx) {
		return fmt.Errorf("the benchmark's Checkpoint cache did not sync within 2m")
	}
	b.checkpoints = c
	return nil
}

// latestVerified maps each workload ("<namespace>/<name>") to the
// completion time of its latest verified checkpoint.
func (b *bench) latestVerified(ctx context.Context) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	for i := 0; i < b.c.namespaces; i++ {
		ns := b.namespace(i)
		var l v1alpha1.CheckpointList
		if err := b.checkpoints.List(ctx, &l, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		for _, cp := range l.Items {
			if cp.Status.Phase != v1alpha1.CheckpointSucceeded || cp.Status.CompletionTime == nil {
				continue
			}
			key := ns + "/" + strings.TrimPrefix(cp.Labels[v1alpha1.LabelWorkload], "statefulset.")
			if t := cp.Status.CompletionTime.Time; t.After(out[key]) {
				out[key] = t
			}
		}
	}
	return out, nil
}

// maxAge is the largest age of a workload's latest verified checkpoint
// (a workload without one counts from the start of the benchmark's round).
func (b *bench) maxAge(ctx context.Context) (float64, error) {
	latest, err := b.latestVerified(ctx)
	if err != nil {
		return 0, err
	}
	oldest := 0.0
	for _, n := range b.names {
		t, ok := latest[n]
		if !ok {
			return 0, fmt.Errorf("workload %s has no verified checkpoint any more", n)
		}
		oldest = max(oldest, time.Since(t).Seconds())
	}
	return oldest, nil
}

// controllerRequests sums client-go's rest_client_requests_total of the
// controller's process: its Karmada API and cluster-proxy requests.
func controllerRequests(ctx context.Context) (float64, error) {
	text, err := scrapeText(ctx, framework.InterpreterMetricsURL)
	if err != nil {
		return 0, err
	}
	series, err := parseSeries(text)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", framework.InterpreterMetricsURL, err)
	}
	total, found := 0.0, false
	for name, v := range series {
		if strings.HasPrefix(name, "rest_client_requests_total{") {
			total, found = total+v, true
		}
	}
	if !found {
		return 0, fmt.Errorf("%s has no rest_client_requests_total", framework.InterpreterMetricsURL)
	}
	return total, nil
}

// process reads a local-up process's CPU time and peak RSS from /proc.
type process struct{ pid int }

func newProcess(runDir, name string) (*process, error) {
	b, err := os.ReadFile(filepath.Join(runDir, "pids", name+".pid"))
	if err != nil {
		return nil, fmt.Errorf("%s is not running: %w", name, err)
	}
	// local-up writes "<pid> <command>".
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return nil, fmt.Errorf("%s's pid file is empty", name)
	}
	pid, err := strconv.Atoi(fields[0])
	if err != nil {
		return nil, fmt.Errorf("pid of %s: %w", name, err)
	}
	return &process{pid: pid}, nil
}

// cpuSeconds is the process's user and system CPU time.
func (p *process) cpuSeconds() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command's closing parenthesis; utime and stime are
	// the 14th and 15th fields of the whole line.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", p.pid, len(f))
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", p.pid, f[11], f[12])
	}
	return (ut + st) / clockTicks, nil
}

// clockTicks is USER_HZ, 100 on Linux.
const clockTicks = 100

func (p *process) cpuSince(cpu0 float64, from time.Time) (float64, error) {
	cpu, err := p.cpuSeconds()
	if err != nil {
		return 0, err
	}
	return (cpu - cpu0) / time.Since(from).Seconds(), nil
}

// resetPeakRSS starts the process's high-water resident set (VmHWM) again
// from its current resident set (Linux >= 4.0: clear_refs value 5).
func (p *process) resetPeakRSS() error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("reset the peak RSS of pid %d: %w", p.pid, err)
	}
	return nil
}

// peakRSSMiB is the process's high-water resident set (VmHWM) since it
// started or since resetPeakRSS.
func (p *process) peakRSSMiB() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no VmHWM", p.pid)
}

// cpuUse is a moment's CPU seconds of every process local-up started
// (its pid files) and of the whole machine (/proc/stat: busy and all).
type cpuUse struct {
	byProcess     map[string]float64
	busy, elapsed float64 // machine-wide CPU seconds, all cores
	// steal is the time the hypervisor ran something else while this
	// machine's vCPUs wanted to run (counted in busy): the same code
	// measured half as fast on the same machine an hour apart, and the
	// steal says whether the host, not the code, changed.
	steal float64
}

func readCPUUse(runDir string) cpuUse {
	u := cpuUse{byProcess: map[string]float64{}}
	files, _ := filepath.Glob(filepath.Join(runDir, "pids", "*.pid"))
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".pid")
		if p, err := newProcess(runDir, name); err == nil {
			if s, err := p.cpuSeconds(); err == nil {
				u.byProcess[name] = s
			}
		}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		// "cpu  user nice system idle iowait irq softirq steal ..."
		line, _, _ := strings.Cut(string(b), "\n")
		for i, field := range strings.Fields(line)[1:] {
			v, _ := strconv.ParseFloat(field, 64)
			u.elapsed += v / clockTicks
			if i != 3 && i != 4 { // idle, iowait
				u.busy += v / clockTicks
			}
			if i == 7 { // steal
				u.steal += v / clockTicks
			}
		}
	}
	return u
}

// reportCPU prints where a span's CPU went: how busy the machine was, and
// each process's CPU time per unit (a checkpoint of the round, a workload
// of the storm), largest first. It is what says whether a faster round
// needs less work per checkpoint or more cores, and whose work.
func reportCPU(what string, before, after cpuUse, units int, unit string, seconds float64) {
	type share struct {
		name string
		sec  float64
	}
	var shares []share
	var sum float64
	for name, s := range after.byProcess {
		if d := s - before.byProcess[name]; d > 0 {
			shares = append(shares, share{name, d})
			sum += d
		}
	}
	sort.Slice(shares, func(i, j int) bool { return shares[i].sec > shares[j].sec })
	cores := (after.elapsed - before.elapsed) / seconds
	var parts []string
	for _, s := range shares {
		parts = append(parts, fmt.Sprintf("%s %.0f", s.name, 1000*s.sec/float64(units)))
	}
	fmt.Fprintf(os.Stderr, "%s CPU: machine %.2f of %.0f cores busy (%.2f of them stolen by the hypervisor); local-up's processes %.0f ms %s (%s); the rest of the machine %.0f ms %s\n",
		what, (after.busy-before.busy)/seconds, cores, (after.steal-before.steal)/seconds, 1000*sum/float64(units), unit, strings.Join(parts, ", "),
		1000*((after.busy-before.busy)-(after.steal-before.steal)-sum)/float64(units), unit)
}
