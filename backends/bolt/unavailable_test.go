package bolt

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthpaas/berth/backends"
)

// TestClosedStoreIsUnavailableNamingBolt: every call on a closed store (a
// blocking read woken by Close included) fails as a
// *backends.UnavailableError naming bolt as the store, which the API
// answers 503 with Retry-After; its cause is still ErrClosed.
func TestClosedStoreIsUnavailableNamingBolt(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "berth.db"), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	wm, err := s.Put(ctx(t), &backends.KVPair{Key: "k", Value: []byte("v")})
	if err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() {
		_, _, err := s.Get(ctx(t), "k", &backends.QueryOptions{WaitIndex: wm.Index, WaitTime: time.Minute})
		blocked <- err
	}()
	time.Sleep(30 * time.Millisecond)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	check := func(what string, err error) {
		t.Helper()
		var ue *backends.UnavailableError
		if !errors.As(err, &ue) || ue.Backend != "bolt" || ue.Role != "store" || !errors.Is(err, ErrClosed) || !errors.Is(err, backends.ErrUnavailable) {
			t.Errorf("%s on a closed store: %v (%T), want a *backends.UnavailableError naming bolt", what, err, err)
			return
		}
		if !strings.Contains(ue.Reason, "closed") {
			t.Errorf("%s: reason %q", what, ue.Reason)
		}
	}
	select {
	case err := <-blocked:
		check("a blocking Get", err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not wake a blocking Get")
	}
	_, _, err = s.Get(ctx(t), "k", nil)
	check("Get", err)
	_, _, err = s.List(ctx(t), "", nil)
	check("List", err)
	_, err = s.Put(ctx(t), &backends.KVPair{Key: "k", Value: []byte("v")})
	check("Put", err)
	_, _, err = s.CAS(ctx(t), &backends.KVPair{Key: "k", Value: []byte("v"), ModifyIndex: wm.Index})
	check("CAS", err)
	_, err = s.Txn(ctx(t), []backends.TxnOp{{Verb: backends.TxnSet, Key: "k", Value: []byte("v")}})
	check("Txn", err)
	check("Health", s.Health(ctx(t)))
}

// TestStoreErrorsThatAreNotUnavailability: a missing key, a conflict or a
// bad key are not the store being down.
func TestStoreErrorsThatAreNotUnavailability(t *testing.T) {
	s := openTemp(t, Options{NoSync: true})
	_, err := s.Txn(ctx(t), []backends.TxnOp{{Verb: backends.TxnCAS, Key: "k", Value: []byte("v"), Index: 7}})
	var ue *backends.UnavailableError
	if !errors.Is(err, backends.ErrCASConflict) || errors.As(err, &ue) {
		t.Errorf("a CAS conflict: %v", err)
	}
	if _, err := s.Put(ctx(t), &backends.KVPair{Key: ""}); errors.As(err, &ue) || err == nil {
		t.Errorf("an empty key: %v", err)
	}
}
