package memory_test

import (
	"context"
	"testing"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
	"github.com/nexus-ecosystem/nexus/storage/memory"
)

func TestActivityLogIsBounded(t *testing.T) {
	s := memory.NewAuthStore()
	ctx := context.Background()
	u := ecoid.New(ecoid.User)
	var last ecoid.ID
	for range memory.MaxActivities + 10 {
		last = ecoid.New(ecoid.Event)
		if err := s.LogActivity(ctx, auth.Activity{ID: last, UserID: u, Action: auth.ActionLogin}); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := s.Activities(ctx, u, memory.MaxActivities)
	if len(got) != memory.MaxActivities/2+10 || got[0].ID != last {
		t.Fatalf("kept %d entries, newest %s (want %s)", len(got), got[0].ID, last)
	}
}
