package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/url"
	"strconv"
	"strings"
	"time"
)

var _ Mailer = (*SMTP)(nil)

// ErrInvalidSMTPURL means an SMTP URL cannot be used. Its message never repeats the
// password.
var ErrInvalidSMTPURL = errors.New("mail: invalid SMTP URL")

// DefaultSMTPTimeout bounds one delivery when the context has no earlier deadline.
const DefaultSMTPTimeout = 30 * time.Second

// SMTPConfig is a parsed SMTP URL.
type SMTPConfig struct {
	// Host and Port of the server; Port defaults to 587 for smtp:// and 465 for smtps://.
	Host string
	Port string
	// Username and Password, both empty when the URL has no user information: then no
	// AUTH is attempted.
	Username string
	Password string
	// ImplicitTLS is true for smtps:// (TLS from the first byte); smtp:// upgrades with
	// STARTTLS when the server offers it.
	ImplicitTLS bool
}

// String returns the URL without the password, for logs.
func (c SMTPConfig) String() string {
	scheme := "smtp"
	if c.ImplicitTLS {
		scheme = "smtps"
	}
	u := url.URL{Scheme: scheme, Host: net.JoinHostPort(c.Host, c.Port)}
	if c.Username != "" {
		u.User = url.User(c.Username)
	}
	return u.String()
}

// ParseSMTPURL parses smtp://[user[:password]@]host[:port] or the smtps:// form. User and
// password are percent-decoded. It returns an error wrapping ErrInvalidSMTPURL for
// another scheme, a missing host, a bad port, a path, query or fragment, or a password
// without a user.
func ParseSMTPURL(raw string) (SMTPConfig, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url's error repeats the input, password included: say only what kind it was.
		return SMTPConfig{}, fmt.Errorf("%w: not a URL", ErrInvalidSMTPURL)
	}
	var c SMTPConfig
	switch strings.ToLower(u.Scheme) {
	case "smtp":
		c.Port = "587"
	case "smtps":
		c.Port, c.ImplicitTLS = "465", true
	default:
		return SMTPConfig{}, fmt.Errorf("%w: scheme must be smtp or smtps", ErrInvalidSMTPURL)
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return SMTPConfig{}, fmt.Errorf("%w: only smtp://user:pass@host:port", ErrInvalidSMTPURL)
	}
	c.Host = u.Hostname()
	if c.Host == "" || strings.ContainsAny(c.Host, " \r\n") {
		return SMTPConfig{}, fmt.Errorf("%w: missing host", ErrInvalidSMTPURL)
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || strings.Trim(p, "0123456789") != "" || n < 1 || n > 65535 {
			return SMTPConfig{}, fmt.Errorf("%w: bad port", ErrInvalidSMTPURL)
		}
		c.Port = strconv.Itoa(n)
	}
	if u.User != nil {
		c.Username = u.User.Username()
		c.Password, _ = u.User.Password()
		if c.Username == "" && c.Password != "" {
			return SMTPConfig{}, fmt.Errorf("%w: password without a user", ErrInvalidSMTPURL)
		}
		if strings.ContainsAny(c.Username+c.Password, "\x00\r\n") {
			return SMTPConfig{}, fmt.Errorf("%w: control characters in the user information", ErrInvalidSMTPURL)
		}
	}
	return c, nil
}

type smtpOptions struct {
	tls     *tls.Config
	hello   string
	timeout time.Duration
}

// WithTLSConfig sets the TLS configuration for STARTTLS and smtps:// (for example a
// private root CA); ServerName defaults to the URL's host. It applies to NewSMTP only.
func WithTLSConfig(c *tls.Config) Option { return func(o *options) { o.smtp.tls = c } }

// WithHelloName sets the name given in EHLO; default "localhost". NewSMTP only.
func WithHelloName(name string) Option { return func(o *options) { o.smtp.hello = name } }

// WithTimeout bounds one delivery when ctx has no earlier deadline; default
// DefaultSMTPTimeout. NewSMTP only.
func WithTimeout(d time.Duration) Option { return func(o *options) { o.smtp.timeout = d } }

// SMTP is a Mailer that delivers each message over one new SMTP connection: STARTTLS when
// the server offers it (smtp://) or TLS from the start (smtps://), then AUTH PLAIN when the
// URL has a user. Credentials are never sent over an unencrypted connection except to
// localhost (net/smtp's rule). It is safe for concurrent use.
type SMTP struct {
	cfg  SMTPConfig
	opts options
}

// NewSMTP returns an SMTP mailer for rawURL (see ParseSMTPURL). It connects to nothing
// until Send.
func NewSMTP(rawURL string, opts ...Option) (*SMTP, error) {
	cfg, err := ParseSMTPURL(rawURL)
	if err != nil {
		return nil, err
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	if o.smtp.hello == "" {
		o.smtp.hello = "localhost"
	}
	if o.smtp.timeout <= 0 {
		o.smtp.timeout = DefaultSMTPTimeout
	}
	return &SMTP{cfg: cfg, opts: o}, nil
}

// Config returns the parsed URL (its String omits the password).
func (s *SMTP) Config() SMTPConfig { return s.cfg }

func (s *SMTP) tlsConfig() *tls.Config {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if s.opts.smtp.tls != nil {
		c = s.opts.smtp.tls.Clone()
	}
	if c.ServerName == "" {
		c.ServerName = s.cfg.Host
	}
	return c
}

// Send implements Mailer. Errors from the server are returned wrapped; the message says
// which step failed.
func (s *SMTP) Send(ctx context.Context, m Message) error {
	env, err := build(m, s.opts.from, s.opts.now().UTC())
	if err != nil {
		return err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.opts.smtp.timeout)
		defer cancel()
	}
	addr := net.JoinHostPort(s.cfg.Host, s.cfg.Port)
	var conn net.Conn
	if s.cfg.ImplicitTLS {
		d := tls.Dialer{Config: s.tlsConfig()}
		conn, err = d.DialContext(ctx, "tcp", addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return fmt.Errorf("mail: smtp: connect: %w", err)
	}
	defer func() { _ = conn.Close() }()
	// Closing the connection when ctx ends (ctx always has a deadline here) interrupts
	// any step that is waiting, after ctx.Err is set, so the error says why.
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()

	if err := s.deliver(conn, env); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("mail: smtp: %w", ctx.Err())
		}
		return err
	}
	return nil
}

func (s *SMTP) deliver(conn net.Conn, env envelope) error {
	c, err := smtp.NewClient(conn, s.cfg.Host)
	if err != nil {
		return fmt.Errorf("mail: smtp: greeting: %w", err)
	}
	defer func() { _ = c.Close() }()
	if err := c.Hello(s.opts.smtp.hello); err != nil {
		return fmt.Errorf("mail: smtp: hello: %w", err)
	}
	if !s.cfg.ImplicitTLS {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(s.tlsConfig()); err != nil {
				return fmt.Errorf("mail: smtp: starttls: %w", err)
			}
		}
	}
	if s.cfg.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("mail: smtp: the server offers no AUTH but the URL names a user")
		}
		if err := c.Auth(smtp.PlainAuth("", s.cfg.Username, s.cfg.Password, s.cfg.Host)); err != nil {
			return fmt.Errorf("mail: smtp: auth: %w", err)
		}
	}
	if err := c.Mail(env.from.Address); err != nil {
		return fmt.Errorf("mail: smtp: MAIL FROM: %w", err)
	}
	if err := c.Rcpt(env.to.Address); err != nil {
		return fmt.Errorf("mail: smtp: RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("mail: smtp: DATA: %w", err)
	}
	if _, err := w.Write(env.data); err != nil {
		return fmt.Errorf("mail: smtp: DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("mail: smtp: DATA: %w", err)
	}
	return c.Quit()
}
