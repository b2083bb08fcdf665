package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestQuickstartRuns runs the walk-through and checks the facts it prints.
func TestQuickstartRuns(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), &out); err != nil {
		t.Fatalf("quickstart failed: %v\n%s", err, out.String())
	}
	for _, want := range []string{
		"(type prj,",
		"email normalised to ann@example.com",
		"presenting the old refresh token again: auth:",
		"so the new one fails too: true",
		"fails before any lookup: true",
		"request 3: allowed=true remaining=0",
		"request 4: allowed=false",
		"Tracker: accepted 3, flushed 3, dropped 0",
		"quota this month: 3 calls of 1000, 997 remaining",
		"GET /api/v1/ping: 3 calls",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
