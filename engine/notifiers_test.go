package engine

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"testing"
)

func TestNotifiers(t *testing.T) {
	e, _ := newTestEngine(t, nil)
	ctx := context.Background()
	root := &Identity{Email: "root@b.co", Admin: true}
	user := addUser(t, e, "user@b.co")
	const hook = "https://hooks.example.com/x?token=secret"

	if _, err := e.AddNotifier(ctx, user, NotifyImagePush, hook); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a user registers a notifier: %v, want forbidden", err)
	}
	if _, err := e.AddNotifier(ctx, root, "deploy", hook); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an unknown type: %v, want not found", err)
	}
	if _, err := e.AddNotifier(ctx, root, NotifyImagePush, "http://u:p@x/"); !errors.Is(err, ErrInvalid) {
		t.Fatalf("a URL with credentials: %v, want invalid", err)
	}
	n, err := e.AddNotifier(ctx, root, NotifyImagePush, hook)
	if err != nil || n.URL != hook || n.By != root.Email || n.Type != NotifyImagePush {
		t.Fatalf("registering: %+v %v", n, err)
	}
	if _, err := e.AddNotifier(ctx, root, NotifyImagePush, hook); !errors.Is(err, ErrConflict) {
		t.Fatalf("registering it twice: %v, want conflict", err)
	}

	if ns, err := e.ListNotifiers(ctx, root, NotifyImagePush); err != nil || len(ns) != 1 || ns[0].URL != hook {
		t.Fatalf("an admin lists %+v (%v)", ns, err)
	}
	if ns, err := e.ListNotifiers(ctx, user, NotifyImagePush); err != nil || len(ns) != 1 || ns[0].URL != "https://hooks.example.com/…" {
		t.Fatalf("a user lists %+v (%v), want the URL masked", ns, err)
	}
	if ns, err := e.ListNotifiers(ctx, root, NotifyImagePush); err != nil || ns[0].URL != hook {
		t.Fatalf("masking for a user changed the record: %+v %v", ns, err)
	}

	if err := e.RemoveNotifier(ctx, user, NotifyImagePush, hook); !errors.Is(err, ErrForbidden) {
		t.Fatalf("a user removes a notifier: %v, want forbidden", err)
	}
	if err := e.RemoveNotifier(ctx, root, NotifyImagePush, hook); err != nil {
		t.Fatal(err)
	}
	if err := e.RemoveNotifier(ctx, root, NotifyImagePush, hook); !errors.Is(err, ErrNotFound) {
		t.Fatalf("removing it twice: %v, want not found", err)
	}
	if ns, err := e.ListNotifiers(ctx, root, NotifyImagePush); err != nil || ns == nil || len(ns) != 0 {
		t.Fatalf("after removal: %+v %v, want an empty list", ns, err)
	}
}

// FuzzNotifyURL: only absolute http(s) URLs without credentials are taken.
func FuzzNotifyURL(f *testing.F) {
	for _, s := range []string{`{"notify_url":"http://lxcmond.lain:3001/api/v1/imagepush"}`, `{"notify_url":"ftp://x/"}`,
		`{"notify_url":"http://u:p@x/"}`, `{"notify_url":"http://"}`, `{"notify_url":"//x/y"}`, `{"notify_url":"http://x/\n"}`,
		`{"notify_url":"HTTP://X"}`, `{"notify_url":"http://[::1]:80/"}`, `{"notify_url":5}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var in struct {
			NotifyURL string `json:"notify_url"`
		}
		if json.Unmarshal(body, &in) != nil {
			return
		}
		if err := checkNotifyURL(in.NotifyURL); err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("checkNotifyURL(%q): %v is not invalid", in.NotifyURL, err)
			}
			return
		}
		u := in.NotifyURL
		p, perr := url.Parse(u)
		if perr != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.User != nil || len(u) > 2048 {
			t.Fatalf("checkNotifyURL accepted %q", u)
		}
	})
}
