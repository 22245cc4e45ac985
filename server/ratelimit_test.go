package server

import (
	"sync"
	"testing"
	"time"
)

func TestKeyedLimiterCountsOnlyFailures(t *testing.T) {
	k := newKeyedLimiter(time.Hour, 2, 100)
	// Successes do not count.
	for i := 0; i < 10; i++ {
		tk, _ := k.admit("a")
		if tk == nil {
			t.Fatalf("attempt %d refused though none failed", i)
		}
		tk.done(false)
	}
	for i := 0; i < 2; i++ {
		tk, _ := k.admit("a")
		if tk == nil {
			t.Fatalf("failure %d refused within the burst", i)
		}
		tk.done(true)
	}
	tk, wait := k.admit("a")
	if tk != nil || wait < 59*time.Minute {
		t.Fatalf("after the burst: ticket %v, wait %v", tk, wait)
	}
	if tk, _ := k.admit("b"); tk == nil {
		t.Fatal("another key is limited too")
	}
}

func TestKeyedLimiterBoundsConcurrency(t *testing.T) {
	k := newKeyedLimiter(time.Hour, 3, 100)
	var mu sync.Mutex
	admitted := 0
	var wg sync.WaitGroup
	var tickets []*ticket
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if tk, _ := k.admit("x"); tk != nil {
				mu.Lock()
				admitted++
				tickets = append(tickets, tk)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if admitted != 3 {
		t.Fatalf("%d concurrent attempts admitted, want the burst (3)", admitted)
	}
	for _, tk := range tickets {
		tk.done(false)
		tk.done(true) // a second done is a no-op
	}
	if tk, _ := k.admit("x"); tk == nil {
		t.Fatal("tickets ended without counting still hold tokens")
	}
}

func TestKeyedLimiterTableIsBounded(t *testing.T) {
	k := newKeyedLimiter(time.Hour, 1, 10)
	for i := 0; i < 1000; i++ {
		k.take(string(rune('a'+i%26)) + time.Duration(i).String())
	}
	if n := len(k.m); n > 10 || k.ll.Len() > 10 {
		t.Fatalf("the table holds %d keys (list %d), bound 10", n, k.ll.Len())
	}
	s := newLRUSet(time.Hour, 5)
	for i := 0; i < 100; i++ {
		s.add(time.Duration(i).String())
	}
	if len(s.m) > 5 || !s.has(time.Duration(99).String()) || s.has(time.Duration(0).String()) {
		t.Fatalf("the LRU set: %d keys", len(s.m))
	}
}
