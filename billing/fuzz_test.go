package billing_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
)

// FuzzWebhook sends random bodies and Stripe-Signature headers to the webhook handler.
// When sign is set the body is signed with the endpoint secret first and header is
// appended to that valid header, so random JSON also reaches event decoding and the
// handlers, and random header elements meet a valid signature. The handler must never
// panic and must answer 400 to anything unsigned and to any header with a second t=
// (the replay of issue 10.3); signed input gets 200 or 400 (a memory store cannot fail).
func FuzzWebhook(f *testing.F) {
	// Seeds live in testdata/fuzz/FuzzWebhook; these add the well-formed events.
	f.Add([]byte(`{"id":"evt_1","object":"event","type":"checkout.session.completed","created":1773144000,"data":{"object":{"client_reference_id":"eco_usr_0VDpfKZZegSYAqNPUk9kuU","metadata":{"plan":"pro"}}}}`), "", true)
	f.Add([]byte(`{"id":"evt_2","object":"event","type":"customer.subscription.deleted","created":1773144000,"data":{"object":{"id":"sub_1","customer":"cus_1","metadata":{"eco_id":"eco_usr_0VDpfKZZegSYAqNPUk9kuU"}}}}`), "", true)
	f.Add([]byte(`{}`), "t=1773144000,v1=00", false)
	f.Add([]byte(`{"id":"evt_3","object":"event","type":"invoice.created","created":1773144000,"data":{"object":{"id":"in_1"}}}`), ",t=1770724800", true)
	e := newEnv(f, false)
	e.user(f) // one registered user, so some events find a row
	h := e.svc.WebhookHandler(whSecret)
	f.Fuzz(func(t *testing.T, body []byte, header string, sign bool) {
		secondT := false
		if sign {
			for _, part := range strings.Split(header, ",") {
				secondT = secondT || strings.HasPrefix(part, "t=")
			}
			header = signed(body, whSecret, e.clock.Now()) + header
		}
		req, err := http.NewRequest(http.MethodPost, "/api/webhooks/stripe", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Stripe-Signature", header)
		w := newResponse()
		h.ServeHTTP(w, req)
		switch {
		case !sign && w.status != 400 && w.status != http.StatusRequestEntityTooLarge:
			// An unsigned request can only pass by forging HMAC-SHA256.
			t.Fatalf("unsigned request answered %d: %s", w.status, w.body.String())
		case secondT && w.status != 400 && w.status != http.StatusRequestEntityTooLarge:
			t.Fatalf("a header with two timestamps answered %d: %s", w.status, w.body.String())
		case sign && w.status != 200 && w.status != 400:
			t.Fatalf("signed request answered %d: %s", w.status, w.body.String())
		}
	})
}
