package guard

import (
	"context"

	"github.com/nexus-ecosystem/nexus/apikey"
	"github.com/nexus-ecosystem/nexus/usage"
)

var _ Refunder = (*Limits)(nil)

// Refund implements Refunder: the call of a request whose client never got the answer
// goes back to the counter (a failure there only leaves it counted, and is not retried:
// the client may be charged for one call it did not receive).
func (l *Limits) Refund(ctx context.Context, key apikey.Key, d Decision) {
	if d.Allowed {
		_ = l.counter.RemoveCall(context.WithoutCancel(ctx), key.Owner, usage.PeriodStart(l.now()))
	}
}
