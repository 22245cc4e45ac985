package server

import (
	"errors"
	"testing"
	"time"

	"github.com/berthpaas/berth/engine"
)

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 3, 4, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"2026-03-04T11:00:00Z":        time.Date(2026, 3, 4, 11, 0, 0, 0, time.UTC),
		"2026-03-04T13:00:00.5+02:00": time.Date(2026, 3, 4, 11, 0, 0, 5e8, time.UTC),
		"10m":                         now.Add(-10 * time.Minute),
		"1h30m":                       now.Add(-90 * time.Minute),
		"0s":                          now,
	} {
		got, err := parseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %s, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"yesterday", "-5m", "2026-03-04", "10"} {
		if _, err := parseSince(in, now); !errors.Is(err, engine.ErrInvalid) {
			t.Errorf("parseSince(%q) = %v, want an invalid-input error", in, err)
		}
	}
}
