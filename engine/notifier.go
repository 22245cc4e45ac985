package engine

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/berthpaas/berth/backends"
	"github.com/berthpaas/berth/engine/state"
)

// Notify types.
const NotifyImagePush = "imagepush"

// notifySecretPath keeps the generated HMAC key when config has none.
const notifySecretPath = "berth/notify-hmac"

// delivery is one webhook call to make.
type delivery struct {
	url     string
	event   string
	body    []byte
	attempt int
}

// notifier delivers webhooks asynchronously with retries and backoff. A
// failing notifier never blocks or fails the operation that triggered it.
type notifier struct {
	s       *Engine
	client  *http.Client
	queue   chan delivery
	wg      sync.WaitGroup
	stopped chan struct{}
	ctx     context.Context // ends at stop: calls under way are cut short
	cancel  context.CancelFunc
	once    sync.Once
	keyMu   sync.Mutex
	key     []byte
}

func newNotifier(s *Engine) *notifier {
	ctx, cancel := context.WithCancel(context.Background())
	return &notifier{
		s: s,
		// A transport of its own, whose kept-alive connections (and their
		// goroutines) stop closes.
		client: &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone(), Timeout: s.cfg.Notify.TimeoutDur,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
		queue:   make(chan delivery, 1024),
		stopped: make(chan struct{}),
		ctx:     ctx, cancel: cancel,
	}
}

func (n *notifier) start() {
	for i := 0; i < 4; i++ {
		n.wg.Add(1)
		go n.worker()
	}
}

// stop ends the workers (a delivery under way is cut short) and closes
// the webhook client's connections; it returns when they have stopped.
func (n *notifier) stop() {
	n.once.Do(func() { close(n.stopped); n.cancel() })
	n.wg.Wait()
	n.client.CloseIdleConnections()
}

func (n *notifier) hmacKey(ctx context.Context) ([]byte, error) {
	if n.s.cfg.Notify.Secret != "" {
		return []byte(n.s.cfg.Notify.Secret), nil
	}
	n.keyMu.Lock()
	defer n.keyMu.Unlock()
	if n.key != nil {
		return n.key, nil
	}
	sec, err := n.s.secrets.Get(ctx, notifySecretPath, 0)
	if errors.Is(err, backends.ErrNotFound) {
		k := NewSecret(32)
		// Created only if absent: two servers starting together must not
		// each keep a key of their own.
		_, err = n.s.secrets.PutCAS(ctx, notifySecretPath, map[string]string{"key": k}, 0)
		if err == nil {
			n.key = []byte(k)
			return n.key, nil
		}
		if !errors.Is(err, backends.ErrCASMismatch) {
			return nil, err
		}
		sec, err = n.s.secrets.Get(ctx, notifySecretPath, 0)
	}
	if err != nil {
		return nil, err
	}
	n.key = []byte(sec.Data["key"])
	return n.key, nil
}

// Sign returns the X-Berth-Signature value for body.
func sign(key, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// notify queues a delivery of payload to every notifier of typ.
func (n *notifier) notify(ctx context.Context, typ string, payload any) {
	ns, err := state.List[state.Notifier](ctx, n.s.store, state.NotifierPrefix(typ))
	if err != nil {
		n.s.log.Warn("could not list notifiers", "type", typ, "error", err)
		return
	}
	body, _ := json.Marshal(payload)
	for _, nt := range ns {
		select {
		case n.queue <- delivery{url: nt.URL, event: typ, body: body}:
		default:
			n.s.log.Warn("notify queue full; dropping delivery", "type", typ, "host", HostOf(nt.URL))
		}
	}
}

func HostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "?"
	}
	return p.Host
}

func (n *notifier) worker() {
	defer n.wg.Done()
	for {
		select {
		case <-n.stopped:
			return
		case d := <-n.queue:
			n.deliver(d)
		}
	}
}

// deliver makes one delivery with retries; it gives up after
// notify.max_attempts, or when the server stops.
func (n *notifier) deliver(d delivery) {
	cfg := n.s.cfg.Notify
	backoff := cfg.BackoffDur
	for attempt := 1; attempt <= cfg.MaxAttempts; attempt++ {
		err := n.post(d, attempt)
		if err == nil {
			n.s.log.Debug("notified", "type", d.event, "host", HostOf(d.url), "attempt", attempt)
			return
		}
		n.s.log.Warn("notify failed", "type", d.event, "host", HostOf(d.url), "attempt", attempt, "error", err)
		if attempt == cfg.MaxAttempts {
			return
		}
		select {
		case <-n.stopped:
			return
		case <-time.After(backoff):
		}
		backoff *= 2
		if backoff > 5*time.Minute {
			backoff = 5 * time.Minute
		}
	}
}

func (n *notifier) post(d delivery, attempt int) error {
	ctx, cancel := context.WithTimeout(n.ctx, n.s.cfg.Notify.TimeoutDur)
	defer cancel()
	key, err := n.hmacKey(ctx)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(d.body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "berth-notifier")
	req.Header.Set("X-Berth-Event", d.event)
	req.Header.Set("X-Berth-Attempt", itoa(attempt))
	req.Header.Set("X-Berth-Signature", sign(key, d.body))
	resp, err := n.client.Do(req)
	if err != nil {
		return errors.New("request failed: " + redactURLError(err))
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errors.New("answered " + resp.Status)
	}
	return nil
}

// redactURLError keeps a URL's query (which may carry a token) out of logs.
func redactURLError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Op + " " + HostOf(ue.URL) + ": " + ue.Err.Error()
	}
	return err.Error()
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}
