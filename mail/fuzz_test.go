package mail

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzParseSMTPURL: NEXUS_SMTP_URL is outside input. Any string gives a config or an
// ErrInvalidSMTPURL, never a panic, and the error never repeats the password.
func FuzzParseSMTPURL(f *testing.F) {
	for _, s := range []string{"smtp://u:p@h:25", "smtps://h", "smtp://[::1]:587", "smtp://:p@h", "smtp://h:99999", "smtp://u:p%zz@h"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseSMTPURL(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidSMTPURL) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if c.Host == "" || c.Port == "" {
			t.Fatalf("accepted without host or port: %+v", c)
		}
		if c.Password != "" && len(c.Password) > 3 && strings.Contains(c.String(), c.Password) && !strings.Contains(c.Host+c.Username, c.Password) {
			t.Fatalf("String shows the password: %s", c.String())
		}
	})
}

// FuzzParseMessage: mail files are read back by tools and tests; any bytes give a
// message or an ErrInvalidMessage, never a panic. A message that build accepts survives
// the round trip.
func FuzzParseMessage(f *testing.F) {
	f.Add([]byte("Subject: =?utf-8?q?caf=C3=A9?=\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nx=3Dy\r\n"), "s", "t")
	f.Add([]byte("\r\n\r\n"), "", "")
	f.Fuzz(func(t *testing.T, raw []byte, subject, text string) {
		if _, err := ParseMessage(bytes.NewReader(raw)); err != nil && !errors.Is(err, ErrInvalidMessage) {
			t.Fatalf("untyped error %v", err)
		}
		env, err := build(Message{To: "ann@example.com", Subject: subject, Text: text}, DefaultFrom, fixed)
		if err != nil {
			return
		}
		m, err := ParseMessage(bytes.NewReader(env.data))
		if err != nil {
			t.Fatalf("cannot read back what build wrote: %v", err)
		}
		want := strings.ReplaceAll(text, "\r\n", "\n")
		if strings.ContainsRune(text, '\r') || !isUTF8(subject+text) {
			return // lone CRs and invalid UTF-8 are not promised to survive
		}
		if m.Text != want {
			t.Fatalf("text %q, want %q", m.Text, want)
		}
	})
}

func isUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }
