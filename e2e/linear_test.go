package e2e

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// The linearizability check: several clients operate on shared apps at
// once through the API (of two servers on one Consul, or one on bolt),
// every operation's call and return time is recorded, and
// github.com/anishathalye/porcupine checks that the history is
// linearizable: every operation seems to take effect at one instant
// between its call and its return. Each register is one (app, key): an
// env variable (set/get), a proc's instance count (scale/read) and an
// app's deployed version (deploy/read).

// linInput is one operation on a register.
type linInput struct {
	Key   string // the register
	Write bool
	Value string // written
}

// linModel is a register per key; a read must see the last write.
var linModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		by := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(linInput).Key
			if _, ok := by[k]; !ok {
				keys = append(keys, k)
			}
			by[k] = append(by[k], op)
		}
		sort.Strings(keys)
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, by[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in := input.(linInput)
		if in.Write {
			return true, in.Value
		}
		return output.(string) == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in := input.(linInput)
		if in.Write {
			return fmt.Sprintf("%s := %q", in.Key, in.Value)
		}
		return fmt.Sprintf("%s -> %q", in.Key, output)
	},
	DescribeState: func(state any) string { return fmt.Sprintf("%q", state) },
}

// linHistory collects operations from the clients.
type linHistory struct {
	mu    sync.Mutex
	start time.Time
	ops   []porcupine.Operation
	// counts of what happened, for the log
	writes, reads, refused, unknown int
	byKey                           map[string]int // writes that took effect, by register
}

func (h *linHistory) now() int64 { return int64(time.Since(h.start)) }

func (h *linHistory) add(op porcupine.Operation) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ops = append(h.ops, op)
}

// linTarget is the shared state the clients operate on.
type linTarget struct {
	servers  []*Berth
	u        *User
	envApp   string
	scaleApp string
	verApp   string
	versions []string
}

// run does one random operation as client c against a random server.
func (tg *linTarget) run(h *linHistory, c int, rng *rand.Rand, seq int) {
	b := tg.servers[rng.IntN(len(tg.servers))]
	var in linInput
	var method, path string
	var body any
	switch kind := rng.IntN(6); kind {
	case 0, 1: // env set (the app is not deployed: no lease, every set commits)
		in = linInput{Key: "env", Write: true, Value: fmt.Sprintf("c%d-%d", c, seq)}
		method, path = "POST", "/apps/"+tg.envApp+"/env"
		body = map[string]any{"envs": []map[string]any{{"name": "GREETING", "value": in.Value}}, "norestart": true}
	case 2:
		in = linInput{Key: "env"}
		method, path = "GET", "/apps/"+tg.envApp+"/env"
	case 3: // scale, or read the instance count
		if rng.IntN(2) == 0 {
			in = linInput{Key: "scale", Write: true, Value: strconv.Itoa(1 + rng.IntN(2))}
			n, _ := strconv.Atoi(in.Value)
			method, path, body = "PATCH", "/api/v1/apps/"+tg.scaleApp+"/procs/web/", map[string]any{"num_instances": n}
		} else {
			in = linInput{Key: "scale"}
			method, path = "GET", "/api/v1/apps/"+tg.scaleApp+"/procs/web/"
		}
	default: // deploy a version, or read the deployed version
		if kind == 4 {
			in = linInput{Key: "version", Write: true, Value: tg.versions[rng.IntN(len(tg.versions))]}
			method, path, body = "PUT", "/api/v1/apps/"+tg.verApp+"/", map[string]any{"meta_version": in.Value}
		} else {
			in = linInput{Key: "version"}
			method, path = "GET", "/api/v1/apps/"+tg.verApp+"/"
		}
	}
	call := h.now()
	r, err := b.try(method, path, tg.u, body, nil)
	ret := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case in.Write && err == nil && (r.Code == http.StatusOK || r.Code == http.StatusAccepted):
		h.writes++
		h.byKey[in.Key]++
	case in.Write && err == nil && r.Code == http.StatusConflict:
		// Refused (the app's lease is held by another operation):
		// nothing was written.
		h.refused++
		return
	case in.Write:
		// Unknown outcome: it may take effect at any time from its
		// call on.
		h.unknown++
		ret = math.MaxInt64
	case err != nil || r.Code != http.StatusOK:
		return // a failed read tells nothing
	default:
		h.reads++
	}
	var out string
	if !in.Write {
		switch in.Key {
		case "env":
			for _, v := range r.List() {
				if m, _ := v.(map[string]any); m["name"] == "GREETING" {
					out, _ = m["value"].(string)
				}
			}
		case "scale":
			out = strconv.Itoa(int(r.Num("num_instances")))
		case "version":
			out = r.Str("meta_version")
		}
	}
	h.ops = append(h.ops, porcupine.Operation{ClientId: c, Input: in, Call: call, Output: out, Return: ret})
}

// checkLinearizable runs the clients for at most d (or ops operations in
// all) and checks the history.
func checkLinearizable(t *testing.T, name string, tg *linTarget, clients, ops int, d time.Duration) {
	h := &linHistory{start: time.Now(), byKey: map[string]int{}}
	// The registers' values before the clients start: written before.
	initial := map[string]string{
		"env":     "init",
		"scale":   "1",
		"version": tg.versions[len(tg.versions)-1], // the latest push, which POST deployed
	}
	for k, v := range initial {
		h.ops = append(h.ops, porcupine.Operation{ClientId: clients, Input: linInput{Key: k, Write: true, Value: v}, Call: -2, Return: -1})
	}
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	per := ops / clients
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), uint64(c)))
			for i := 0; i < per && time.Now().Before(deadline); i++ {
				tg.run(h, c, rng, i)
			}
		}(c)
	}
	wg.Wait()
	t.Logf("%s: %d operations in %v: %d writes (by register %v), %d reads, %d writes refused (409 busy), %d writes of unknown outcome",
		name, len(h.ops)-len(initial), time.Since(h.start).Round(time.Millisecond), h.writes, h.byKey, h.reads, h.refused, h.unknown)
	if h.writes == 0 || h.reads == 0 {
		t.Fatalf("%s: the history has %d writes and %d reads: nothing to check", name, h.writes, h.reads)
	}
	res, info := porcupine.CheckOperationsVerbose(linModel, h.ops, 20*time.Second)
	switch res {
	case porcupine.Ok:
	case porcupine.Unknown:
		t.Logf("%s: porcupine could not decide within 20s (no violation found)", name)
	default:
		path := linArtifact(t, name)
		if err := porcupine.VisualizePath(linModel, info, path); err != nil {
			t.Errorf("writing the visualization: %v", err)
		}
		t.Errorf("%s: the history of %d operations is NOT linearizable; visualization: %s", name, len(h.ops), path)
	}
}

// linArtifact is where a failed check's visualization goes:
// $BERTH_ARTIFACTS, else e2e/artifacts/.
func linArtifact(t *testing.T, name string) string {
	dir := os.Getenv("BERTH_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Errorf("artifacts dir: %v", err)
	}
	p, _ := filepath.Abs(filepath.Join(dir, fmt.Sprintf("linearizability-%s-%d.html", name, time.Now().Unix())))
	return p
}

// linSetup registers the apps on servers[0] and deploys the scale and
// version apps (one instance of the test web app).
func linSetup(t *testing.T, ps *procTracker, servers []*Berth) *linTarget {
	bin := buildWebapp(t)
	b := servers[0]
	u := b.newUser(t, "linear")
	tg := &linTarget{servers: servers, u: u, envApp: "linenv", scaleApp: "linscale", verApp: "linver"}
	for _, app := range []string{tg.envApp, tg.scaleApp, tg.verApp} {
		b.createApp(t, u, app)
	}
	b.do(t, "POST", "/apps/"+tg.envApp+"/env", u, map[string]any{"envs": []map[string]any{{"name": "GREETING", "value": "init"}}, "norestart": true}).want(t, http.StatusOK)
	for i := 0; i < 3; i++ {
		mv := metaVersion()
		tg.versions = append(tg.versions, mv)
		b.push(t, u, tg.verApp, webRelease(mv, bin, 1))
	}
	b.push(t, u, tg.scaleApp, webRelease(tg.versions[0], bin, 1))
	for _, app := range []string{tg.scaleApp, tg.verApp} {
		r := b.do(t, "POST", "/api/v1/apps/", u, map[string]any{"appname": app}).want(t, http.StatusAccepted)
		v := b.waitRunning(t, u, app, generationOf(t, r))
		ps.note(t, app, v.Procs[0].Instances)
	}
	return tg
}

// TestLinearizableCluster: two servers on one Consul prefix.
func TestLinearizableCluster(t *testing.T) {
	ps := trackProcs(t) // before the servers: its check runs after they stopped
	srv := startCluster(t, 2)
	tg := linSetup(t, ps, srv)
	checkLinearizable(t, "consul-2-servers", tg, 6, 480, 15*time.Second)
	// The servers answered reads from memory under their read leases (the
	// history above checked those reads too).
	for _, b := range srv {
		r := b.do(t, "GET", "/metrics", nil, nil).want(t, http.StatusOK)
		m := leaseReads.FindStringSubmatch(string(r.Raw))
		if m == nil || m[1] == "0" {
			t.Errorf("server %s answered no read under its read lease: %v", b.URL, m)
		}
		if !strings.Contains(string(r.Raw), "\nberth_store_read_lease 1\n") {
			t.Errorf("server %s does not hold its read lease", b.URL)
		}
	}
}

var leaseReads = regexp.MustCompile(`(?m)^berth_store_reads_total\{path="lease"\} ([0-9.e+]+)$`)

// TestLinearizableBolt: one server on bolt.
func TestLinearizableBolt(t *testing.T) {
	ps := trackProcs(t)
	tg := linSetup(t, ps, []*Berth{startBerth(t, Options{})})
	checkLinearizable(t, "bolt", tg, 6, 480, 15*time.Second)
}

// TestLinearizableCheckerCatchesStaleRead: the model and checker used
// above reject a history with a stale read (a read that returns the
// value before a write that completed before the read began), so a
// passing check means something.
func TestLinearizableCheckerCatchesStaleRead(t *testing.T) {
	h := []porcupine.Operation{
		{ClientId: 0, Input: linInput{Key: "env", Write: true, Value: "a"}, Call: 0, Return: 1},
		{ClientId: 0, Input: linInput{Key: "env", Write: true, Value: "b"}, Call: 2, Return: 3},
		{ClientId: 1, Input: linInput{Key: "env"}, Output: "a", Call: 4, Return: 5},
		{ClientId: 1, Input: linInput{Key: "scale"}, Output: "", Call: 4, Return: 5},
	}
	if res := porcupine.CheckOperationsTimeout(linModel, h, 5*time.Second); res != porcupine.Illegal {
		t.Errorf("a stale read was judged %s", res)
	}
	h[2].Output = "b"
	if res := porcupine.CheckOperationsTimeout(linModel, h, 5*time.Second); res != porcupine.Ok {
		t.Errorf("a linearizable history was judged %s", res)
	}
	// Unknown outcomes may take effect late.
	h = append(h, porcupine.Operation{ClientId: 2, Input: linInput{Key: "env", Write: true, Value: "c"}, Call: 6, Return: math.MaxInt64},
		porcupine.Operation{ClientId: 1, Input: linInput{Key: "env"}, Output: "b", Call: 7, Return: 8},
		porcupine.Operation{ClientId: 1, Input: linInput{Key: "env"}, Output: "c", Call: 9, Return: 10})
	if res := porcupine.CheckOperationsTimeout(linModel, h, 5*time.Second); res != porcupine.Ok {
		t.Errorf("a write of unknown outcome seen late was judged %s", res)
	}
}
