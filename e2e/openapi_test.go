package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/berthpaas/berth/server/openapi"
)

// Every request the e2e suite sends to a Berth server, and its answer, is
// validated against the server's own GET /openapi.json (kin-openapi,
// through server/openapi's validating transport): the document cannot
// drift from what the server does. A mismatch fails the run (TestMain).
var oapi struct {
	once      sync.Once
	v         *openapi.Validator
	loadErr   error
	mu        sync.Mutex
	hosts     map[string]bool // the addresses of the Berth servers started
	problems  map[string]int  // mismatch -> times seen
	validated atomic.Int64
}

// watchOpenAPI registers a started server: its requests are validated from
// now on, against the document the first server served.
func watchOpenAPI(b *Berth) {
	oapi.once.Do(func() {
		resp, err := http.Get(b.URL + "/openapi.json")
		if err != nil {
			oapi.loadErr = err
			return
		}
		defer resp.Body.Close()
		doc, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET /openapi.json answered %d", resp.StatusCode)
		}
		if err == nil {
			oapi.v, err = openapi.NewValidator(doc)
		}
		oapi.loadErr = err
	})
	oapi.mu.Lock()
	if oapi.hosts == nil {
		oapi.hosts = map[string]bool{}
	}
	oapi.hosts[b.Addr] = true
	oapi.mu.Unlock()
}

func reportOpenAPI(msg string) {
	oapi.mu.Lock()
	defer oapi.mu.Unlock()
	if oapi.problems == nil {
		oapi.problems = map[string]int{}
	}
	oapi.problems[msg]++
}

// validating is an http.RoundTripper that validates the requests to Berth
// servers (and their answers) and passes any other through.
type validating struct{ base http.RoundTripper }

func (t validating) RoundTrip(r *http.Request) (*http.Response, error) {
	oapi.mu.Lock()
	berth := oapi.hosts[r.URL.Host]
	oapi.mu.Unlock()
	if !berth || oapi.v == nil {
		return t.base.RoundTrip(r)
	}
	oapi.validated.Add(1)
	return oapi.v.Transport(t.base, reportOpenAPI).RoundTrip(r)
}

func init() {
	http.DefaultClient.Transport = validating{base: http.DefaultTransport}
}

// openAPIVerdict prints what was validated and returns 1 if the document
// and the server disagreed.
func openAPIVerdict() int {
	oapi.mu.Lock()
	defer oapi.mu.Unlock()
	if oapi.loadErr != nil {
		fmt.Fprintf(os.Stderr, "e2e: the server's OpenAPI document could not be loaded: %v\n", oapi.loadErr)
		return 1
	}
	fmt.Fprintf(os.Stderr, "e2e: %d requests and answers validated against /openapi.json; %d mismatches\n", oapi.validated.Load(), len(oapi.problems))
	if len(oapi.problems) == 0 {
		return 0
	}
	var list []string
	for p, n := range oapi.problems {
		list = append(list, fmt.Sprintf("  (%dx) %s", n, p))
	}
	sort.Strings(list)
	for _, l := range list {
		fmt.Fprintln(os.Stderr, l)
	}
	return 1
}

// checkAnswerTypes records, as mismatches, the server's log lines saying a
// handler answered another type than its route declares (the type the
// OpenAPI document and the api/ client are made from).
func checkAnswerTypes(serverLog string) {
	for _, line := range strings.Split(serverLog, "\n") {
		if i := strings.Index(line, "a handler answered a type its route does not declare"); i >= 0 {
			reportOpenAPI(strings.TrimSpace(line[i:]))
		}
	}
}
