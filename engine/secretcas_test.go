package engine

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

// TestMergeSecretConcurrentAndUndo: concurrent merges of distinct names
// into one secret all land (check-and-set), and an undo restores exactly
// the names its merge touched, leaving the others' changes alone.
func TestMergeSecretConcurrentAndUndo(t *testing.T) {
	s, _ := newTestEngine(t, nil)
	ctx := context.Background()
	const path = "apps/racy/env"
	if _, err := s.mergeSecret(ctx, path, map[string]string{"KEEP": "old", "GONE": "was"}, nil); err != nil {
		t.Fatal(err)
	}
	const writers = 30
	var wg sync.WaitGroup
	undos := make([]func(), writers)
	errs := make([]error, writers)
	for i := 0; i < writers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			undos[i], errs[i] = s.mergeSecret(ctx, path, map[string]string{fmt.Sprintf("K%02d", i): fmt.Sprint(i)}, nil)
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	sec, err := s.secrets.Get(ctx, path, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(sec.Data) != writers+2 {
		t.Fatalf("%d names after %d concurrent merges, want %d (lost writes)", len(sec.Data), writers, writers+2)
	}
	// A refused operation's merge (set KEEP, remove GONE, add NEW) is undone
	// after another writer changed K00: only its own names go back.
	undo, err := s.mergeSecret(ctx, path, map[string]string{"KEEP": "new", "NEW": "x"}, []string{"GONE"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.mergeSecret(ctx, path, map[string]string{"K00": "changed"}, nil); err != nil {
		t.Fatal(err)
	}
	undo()
	sec, _ = s.secrets.Get(ctx, path, 0)
	if sec.Data["KEEP"] != "old" || sec.Data["GONE"] != "was" || sec.Data["NEW"] != "" || sec.Data["K00"] != "changed" || len(sec.Data) != writers+2 {
		t.Fatalf("after the undo: KEEP %q GONE %q NEW %q K00 %q, %d names", sec.Data["KEEP"], sec.Data["GONE"], sec.Data["NEW"], sec.Data["K00"], len(sec.Data))
	}
}
