package apikey_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

func TestCreateCapsLiveKeysPerOwner(t *testing.T) {
	s, _, clock := newService(t, apikey.Config{})
	ctx := context.Background()
	var first apikey.Key
	for i := range apikey.DefaultMaxKeysPerOwner {
		k, _ := create(t, s, apikey.CreateParams{})
		if i == 0 {
			first = k
		}
		clock.Advance(time.Microsecond)
	}
	_, plain, err := s.Create(ctx, apikey.CreateParams{Owner: alice, Name: "one too many"})
	if !errors.Is(err, apikey.ErrTooManyKeys) || plain != "" {
		t.Fatalf("key %d: %v, want ErrTooManyKeys", apikey.DefaultMaxKeysPerOwner+1, err)
	}
	create(t, s, apikey.CreateParams{Owner: bob}) // another owner is not capped by alice's keys
	if err := s.Revoke(ctx, alice, first.ID); err != nil {
		t.Fatal(err)
	}
	create(t, s, apikey.CreateParams{}) // a revoked key frees its place
	if keys, err := s.List(ctx, alice); err != nil || len(keys) != apikey.DefaultMaxKeysPerOwner+1 {
		t.Fatalf("List: %d keys, %v", len(keys), err)
	}

	small, _, _ := newService(t, apikey.Config{MaxKeysPerOwner: 2})
	create(t, small, apikey.CreateParams{})
	create(t, small, apikey.CreateParams{})
	if _, _, err := small.Create(ctx, apikey.CreateParams{Owner: alice, Name: "3rd"}); !errors.Is(err, apikey.ErrTooManyKeys) {
		t.Fatalf("MaxKeysPerOwner 2, 3rd key: %v", err)
	}
	none, _, _ := newService(t, apikey.Config{MaxKeysPerOwner: -1})
	for range apikey.DefaultMaxKeysPerOwner + 5 {
		create(t, none, apikey.CreateParams{})
	}
}

func TestListPage(t *testing.T) {
	s, _, clock := newService(t, apikey.Config{})
	ctx := context.Background()
	if p, err := s.ListPage(ctx, alice, apikey.ListParams{}); err != nil || p.Keys == nil || len(p.Keys) != 0 || p.Next != "" {
		t.Fatalf("no keys: %+v, %v", p, err)
	}
	var want []ecoid.ID
	for range 5 {
		k, _ := create(t, s, apikey.CreateParams{})
		want = append(want, k.ID)
		clock.Advance(time.Second)
	}
	foreign, _ := create(t, s, apikey.CreateParams{Owner: bob})

	var got []ecoid.ID
	p := apikey.ListParams{Limit: 2}
	for pages := 1; ; pages++ {
		page, err := s.ListPage(ctx, alice, p)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range page.Keys {
			got = append(got, k.ID)
		}
		if page.Next == "" {
			if pages != 3 || len(page.Keys) != 1 {
				t.Fatalf("last page is page %d with %d keys, want page 3 with 1", pages, len(page.Keys))
			}
			break
		}
		if len(page.Keys) != 2 || page.Next != page.Keys[1].ID {
			t.Fatalf("page %d: %d keys, next %q", pages, len(page.Keys), page.Next)
		}
		p.After = page.Next
	}
	if len(got) != len(want) {
		t.Fatalf("pages gave %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("pages gave %v, want %v", got, want)
		}
	}
	// A full last page has no Next either.
	if page, err := s.ListPage(ctx, alice, apikey.ListParams{Limit: 5}); err != nil || len(page.Keys) != 5 || page.Next != "" {
		t.Fatalf("limit 5 of 5: %d keys, next %q, %v", len(page.Keys), page.Next, err)
	}
	if page, err := s.ListPage(ctx, alice, apikey.ListParams{}); err != nil || len(page.Keys) != 5 {
		t.Fatalf("default limit: %d keys, %v", len(page.Keys), err)
	}

	bad := map[string]apikey.ListParams{
		"limit":        {Limit: -1},
		"limit high":   {Limit: apikey.MaxListLimit + 1},
		"cursor":       {After: ecoid.New(ecoid.User)},
		"cursor bad":   {After: "eco_api_nonsense"},
		"cursor other": {After: foreign.ID},
		"cursor none":  {After: ecoid.New(ecoid.APIKey)},
	}
	for name, p := range bad {
		_, err := s.ListPage(ctx, alice, p)
		var ie *apikey.InputError
		if !errors.As(err, &ie) || !errors.Is(err, apikey.ErrInvalidInput) || ie.Field != name[:5] && ie.Field != name[:6] {
			t.Errorf("%s: %v", name, err)
		}
	}
}
