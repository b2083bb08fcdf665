// Package mail sends the few messages an account system needs (email verification,
// password reset) through a Mailer: Dir writes each message as one RFC 5322 .eml file (for
// development and tests), SMTP sends it to a mail server (STARTTLS when offered).
//
// The package depends on the standard library only, so any package may use it.
package mail

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
)

// DefaultFrom is the sender of messages whose From is empty, unless WithFrom sets another.
const DefaultFrom = "Nexus <no-reply@localhost>"

// ErrInvalidMessage means a Message cannot be sent as it is: an address that is not one
// plain RFC 5322 address, or a line break in a header field (header injection).
var ErrInvalidMessage = errors.New("mail: invalid message")

// Message is one plain-text message to one recipient.
type Message struct {
	// From is the sender, "addr@example.com" or "Name <addr@example.com>"; empty means the
	// mailer's default (DefaultFrom unless WithFrom sets another).
	From string
	// To is the recipient, one address.
	To string
	// Subject is the subject line: any UTF-8 without line breaks.
	Subject string
	// Text is the plain-text body (UTF-8); line breaks may be \n or \r\n.
	Text string
}

// Mailer sends messages. Implementations are safe for concurrent use.
type Mailer interface {
	// Send delivers m, or returns an error: one wrapping ErrInvalidMessage for a message
	// that cannot be sent as it is, or the transport's error. It returns when the
	// message has been handed over (written to disk, accepted by the server) or ctx ends.
	Send(ctx context.Context, m Message) error
}

// options are the settings Option changes; every mailer reads the ones it uses.
type options struct {
	from string
	now  func() time.Time
	smtp smtpOptions
}

// Option configures a mailer (NewDir, NewSMTP).
type Option func(*options)

// WithFrom sets the sender used when a Message has no From. An invalid address makes the
// constructor fail.
func WithFrom(from string) Option { return func(o *options) { o.from = from } }

// WithClock sets the clock for the Date header and file names; default time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.now = now } }

func newOptions(opts []Option) (options, error) {
	o := options{from: DefaultFrom, now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	if _, err := parseAddress(o.from); err != nil {
		return o, fmt.Errorf("mail: default sender: %w", err)
	}
	return o, nil
}

// parseAddress accepts exactly one address, with or without a display name.
func parseAddress(s string) (*mail.Address, error) {
	if strings.ContainsAny(s, "\r\n") {
		return nil, fmt.Errorf("%w: line break in an address", ErrInvalidMessage)
	}
	a, err := mail.ParseAddress(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %q is not one address", ErrInvalidMessage, s)
	}
	return a, nil
}

// envelope is a checked message: parsed addresses and its RFC 5322 bytes.
type envelope struct {
	from, to *mail.Address
	data     []byte
}

// build checks m (filling From with def) and renders it as RFC 5322 text with CRLF line
// ends: Date, From, To, Subject (RFC 2047 encoded when not ASCII), Message-ID,
// MIME-Version and a UTF-8 text/plain body: 7bit when it is ASCII in lines of at most
// 998 characters, quoted-printable otherwise.
func build(m Message, def string, now time.Time) (envelope, error) {
	if m.From == "" {
		m.From = def
	}
	from, err := parseAddress(m.From)
	if err != nil {
		return envelope{}, err
	}
	to, err := parseAddress(m.To)
	if err != nil {
		return envelope{}, err
	}
	if strings.ContainsAny(m.Subject, "\r\n") {
		return envelope{}, fmt.Errorf("%w: line break in the subject", ErrInvalidMessage)
	}
	var id [16]byte
	_, _ = rand.Read(id[:])
	domain := from.Address[strings.LastIndexByte(from.Address, '@')+1:]

	var b bytes.Buffer
	header := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	header("Date", now.Format(time.RFC1123Z))
	header("From", from.String())
	header("To", to.String())
	header("Subject", mime.QEncoding.Encode("utf-8", m.Subject))
	header("Message-ID", "<"+hex.EncodeToString(id[:])+"@"+domain+">")
	header("MIME-Version", "1.0")
	header("Content-Type", `text/plain; charset="utf-8"`)
	lines := strings.Split(strings.ReplaceAll(m.Text, "\r\n", "\n"), "\n")
	if plain7bit(lines) {
		// ASCII in short lines goes as it is, so links stay whole in the file (and grep
		// finds them); anything else is quoted-printable.
		header("Content-Transfer-Encoding", "7bit")
		b.WriteString("\r\n")
		b.WriteString(strings.Join(lines, "\r\n"))
	} else {
		header("Content-Transfer-Encoding", "quoted-printable")
		b.WriteString("\r\n")
		qp := quotedprintable.NewWriter(&b)
		for i, line := range lines {
			if i > 0 {
				_, _ = qp.Write([]byte("\r\n"))
			}
			_, _ = qp.Write([]byte(line))
		}
		_ = qp.Close()
	}
	b.WriteString("\r\n")
	return envelope{from: from, to: to, data: b.Bytes()}, nil
}

// plain7bit reports whether lines can be sent as 7bit text (RFC 5322: ASCII without NUL
// or lone CR, at most 998 characters a line).
func plain7bit(lines []string) bool {
	for _, l := range lines {
		if len(l) > 998 {
			return false
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; c == 0 || c == '\r' || c >= 0x80 {
				return false
			}
		}
	}
	return true
}

// MaxMessageBytes is the largest message ParseMessage reads.
const MaxMessageBytes = 1 << 20

// ParseMessage reads one RFC 5322 message as Dir writes it (as a test or a development
// tool reads the mail directory): the From, To and decoded Subject headers and the
// text body, with quoted-printable decoded and line ends as \n. It returns an error
// wrapping ErrInvalidMessage for anything it cannot read, or a message over
// MaxMessageBytes.
func ParseMessage(r io.Reader) (Message, error) {
	raw, err := io.ReadAll(io.LimitReader(r, MaxMessageBytes+1))
	if err != nil {
		return Message{}, fmt.Errorf("mail: read message: %w", err)
	}
	if len(raw) > MaxMessageBytes {
		return Message{}, fmt.Errorf("%w: larger than %d bytes", ErrInvalidMessage, MaxMessageBytes)
	}
	msg, err := mail.ReadMessage(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		return Message{}, fmt.Errorf("%w: %v", ErrInvalidMessage, err)
	}
	var dec mime.WordDecoder
	subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		return Message{}, fmt.Errorf("%w: subject: %v", ErrInvalidMessage, err)
	}
	var body io.Reader = msg.Body
	if strings.EqualFold(strings.TrimSpace(msg.Header.Get("Content-Transfer-Encoding")), "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	text, err := io.ReadAll(body)
	if err != nil {
		return Message{}, fmt.Errorf("%w: body: %v", ErrInvalidMessage, err)
	}
	out := strings.ReplaceAll(string(text), "\r\n", "\n")
	return Message{
		From: msg.Header.Get("From"), To: msg.Header.Get("To"),
		Subject: subject, Text: strings.TrimSuffix(out, "\n"),
	}, nil
}
