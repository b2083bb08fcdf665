package postgres

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/lib/pq"
	"github.com/nexus-ecosystem/nexus/usage"
)

type sqlStateError string

func (e sqlStateError) Error() string    { return "pgx: " + string(e) }
func (e sqlStateError) SQLState() string { return string(e) }

func TestClassify(t *testing.T) {
	cases := map[string]struct {
		err               error
		retriable, record bool
	}{
		"serialization":      {&pq.Error{Code: "40001"}, true, false},
		"deadlock":           {&pq.Error{Code: "40P01"}, true, false},
		"connection failure": {&pq.Error{Code: "08006"}, true, false},
		"admin shutdown":     {&pq.Error{Code: "57P01"}, true, false},
		"lock timeout":       {&pq.Error{Code: "55P03"}, true, false},
		"pgx serialization":  {fmt.Errorf("q: %w", sqlStateError("40001")), true, false},
		"pgx unique":         {sqlStateError("23505"), false, false},
		"unique violation":   {&pq.Error{Code: "23505"}, false, true},
		"check violation":    {&pq.Error{Code: "23514"}, false, true},
		"bad data":           {&pq.Error{Code: "22P02"}, false, true},
		"syntax":             {&pq.Error{Code: "42601"}, false, false},
		"deadline":           {context.DeadlineExceeded, true, false},
		"plain":              {errors.New("x"), false, false},
	}
	for name, c := range cases {
		err := classify("op", c.err)
		if got := usage.IsRetriable(err); got != c.retriable || errors.Is(err, usage.ErrRetriable) != c.retriable {
			t.Errorf("%s: retriable = %v, want %v (%v)", name, got, c.retriable, err)
		}
		if got := errors.Is(err, usage.ErrInvalidRecord); got != c.record {
			t.Errorf("%s: invalid record = %v, want %v", name, got, c.record)
		}
		if !errors.Is(err, c.err) {
			t.Errorf("%s: classify hides its cause", name)
		}
	}
}
