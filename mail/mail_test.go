package mail

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

var fixed = time.Date(2026, 12, 3, 8, 30, 0, 0, time.UTC)

func TestBuildIsRFC5322AndParsesBack(t *testing.T) {
	m := Message{
		From:    "Nexus <no-reply@example.com>",
		To:      "ann@example.com",
		Subject: "Vérifiez votre adresse",
		Text:    "Hello Ann,\n\nopen https://example.com/verify-email?token=abc_DEF-123\n\n.\nA line of exactly a dot and a very long one " + strings.Repeat("x", 200),
	}
	env, err := build(m, DefaultFrom, fixed)
	if err != nil {
		t.Fatal(err)
	}
	raw := string(env.data)
	for _, line := range strings.SplitAfter(raw, "\n") {
		if line != "" && !strings.HasSuffix(line, "\r\n") {
			t.Fatalf("line without CRLF: %q", line)
		}
		if len(line) > 998+2 {
			t.Fatalf("line longer than 998 characters: %q", line)
		}
	}
	for _, h := range []string{"Date: Thu, 03 Dec 2026 08:30:00 +0000\r\n", "MIME-Version: 1.0\r\n", "Message-ID: <", "@example.com>\r\n", "To: <ann@example.com>\r\n"} {
		if !strings.Contains(raw, h) {
			t.Errorf("missing %q in\n%s", h, raw)
		}
	}
	if strings.Contains(raw, "Vérifiez") {
		t.Error("non-ASCII subject not encoded")
	}
	got, err := ParseMessage(bytes.NewReader(env.data))
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject != m.Subject || got.Text != m.Text || got.To != "<ann@example.com>" || got.From != `"Nexus" <no-reply@example.com>` {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
	}
}

func TestBuildDefaultsFrom(t *testing.T) {
	env, err := build(Message{To: "ann@example.com", Subject: "s", Text: "t"}, DefaultFrom, fixed)
	if err != nil {
		t.Fatal(err)
	}
	if env.from.Address != "no-reply@localhost" {
		t.Fatalf("from %v", env.from)
	}
}

func TestBuildRefusesHeaderInjection(t *testing.T) {
	for name, m := range map[string]Message{
		"subject CRLF": {To: "ann@example.com", Subject: "hi\r\nBcc: eve@example.com"},
		"subject LF":   {To: "ann@example.com", Subject: "hi\nBcc: eve@example.com"},
		"to CRLF":      {To: "ann@example.com\r\nBcc: eve@example.com"},
		"two rcpts":    {To: "ann@example.com, eve@example.com"},
		"empty to":     {},
		"bad from":     {From: "nobody", To: "ann@example.com"},
	} {
		if _, err := build(m, DefaultFrom, fixed); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s: err %v, want ErrInvalidMessage", name, err)
		}
	}
}

func TestParseMessageRefusesGarbage(t *testing.T) {
	for name, in := range map[string]string{
		"no headers": "\x00\x01",
		"too big":    "Subject: x\r\n\r\n" + strings.Repeat("a", MaxMessageBytes),
	} {
		if _, err := ParseMessage(strings.NewReader(in)); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

func TestBuildKeepsASCIILinksWhole(t *testing.T) {
	link := "http://127.0.0.1:8080/reset-password?token=" + strings.Repeat("aZ09_-", 8)
	env, err := build(Message{To: "ann@example.com", Subject: "Reset", Text: "open\n" + link + "\n"}, DefaultFrom, fixed)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(env.data), "\r\n"+link+"\r\n") || !strings.Contains(string(env.data), "Content-Transfer-Encoding: 7bit") {
		t.Fatalf("the link is not whole in the file:\n%s", env.data)
	}
	got, err := ParseMessage(bytes.NewReader(env.data))
	if err != nil || got.Text != "open\n"+link+"\n" {
		t.Fatalf("round trip %q %v", got.Text, err)
	}
}
