package sealed

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthpaas/berth/backends"
)

// TestClosedSecretsAreUnavailableNamingSealed: every call on closed sealed
// secrets fails as a *backends.UnavailableError naming sealed as the
// secrets (503 with Retry-After at the API); its cause is still ErrClosed.
// A missing secret or a check-and-set mismatch is not unavailability.
func TestClosedSecretsAreUnavailableNamingSealed(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "sec"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	var ue *backends.UnavailableError
	if _, err := s.Get(ctx, "a/b", 0); !errors.Is(err, backends.ErrNotFound) || errors.As(err, &ue) {
		t.Errorf("a missing secret: %v", err)
	}
	if _, err := s.Put(ctx, "a/b", map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutCAS(ctx, "a/b", map[string]string{"k": "w"}, 7); !errors.Is(err, backends.ErrCASMismatch) || errors.As(err, &ue) {
		t.Errorf("a check-and-set mismatch: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check := func(what string, err error) {
		t.Helper()
		var ue *backends.UnavailableError
		if !errors.As(err, &ue) || ue.Backend != "sealed" || ue.Role != "secrets" || !errors.Is(err, ErrClosed) || !errors.Is(err, backends.ErrUnavailable) {
			t.Errorf("%s on closed secrets: %v (%T), want a *backends.UnavailableError naming sealed", what, err, err)
			return
		}
		if !strings.Contains(ue.Reason, "closed") {
			t.Errorf("%s: reason %q", what, ue.Reason)
		}
	}
	_, err = s.Get(ctx, "a/b", 0)
	check("Get", err)
	_, err = s.Put(ctx, "a/b", map[string]string{"k": "v"})
	check("Put", err)
	_, err = s.PutCAS(ctx, "a/b", map[string]string{"k": "v"}, 1)
	check("PutCAS", err)
	check("Delete", s.Delete(ctx, "a/b"))
	_, err = s.List(ctx, "a")
	check("List", err)
	check("Health", s.Health(ctx))
}
