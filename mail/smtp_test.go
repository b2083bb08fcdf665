package mail

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"math/big"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"
)

// smtpServer is a tiny SMTP server on loopback, just enough of RFC 5321 (EHLO, STARTTLS,
// AUTH PLAIN, MAIL, RCPT, DATA, QUIT) to check what the client sends.
type smtpServer struct {
	addr      string
	tls       *tls.Config // nil: no STARTTLS offered
	user      string      // "": no AUTH offered
	pass      string
	rejectTo  string // RCPT TO this address answers 550
	stallData bool   // never answer DATA

	mu   sync.Mutex
	got  []received
	errs []string
}

type received struct {
	tls      bool
	authed   bool
	from, to string
	data     []byte
}

func startSMTP(t *testing.T, s *smtpServer) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); s.serve(c) }()
		}
	}()
	return s
}

func (s *smtpServer) url(userinfo string) string {
	if userinfo != "" {
		userinfo += "@"
	}
	return "smtp://" + userinfo + s.addr
}

func (s *smtpServer) messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

func (s *smtpServer) serve(c net.Conn) {
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	tp := textproto.NewConn(c)
	var cur received
	reply := func(format string, args ...any) { _ = tp.PrintfLine(format, args...) }
	reply("220 test ESMTP")
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			var ext []string
			if s.tls != nil && !cur.tls {
				ext = append(ext, "STARTTLS")
			}
			if s.user != "" {
				ext = append(ext, "AUTH PLAIN")
			}
			ext = append(ext, "8BITMIME")
			_ = tp.PrintfLine("250-test")
			for i, e := range ext {
				sep := "-"
				if i == len(ext)-1 {
					sep = " "
				}
				_ = tp.PrintfLine("250%s%s", sep, e)
			}
		case "STARTTLS":
			reply("220 go ahead")
			tc := tls.Server(c, s.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, tp, cur.tls = tc, textproto.NewConn(tc), true
		case "AUTH":
			mech, resp, _ := strings.Cut(arg, " ")
			b, _ := base64.StdEncoding.DecodeString(resp)
			if mech == "PLAIN" && string(b) == "\x00"+s.user+"\x00"+s.pass {
				cur.authed = true
				reply("235 ok")
			} else {
				reply("535 bad credentials")
			}
		case "MAIL":
			cur.from = arg
			reply("250 ok")
		case "RCPT":
			if s.rejectTo != "" && strings.Contains(arg, s.rejectTo) {
				reply("550 no such user")
				continue
			}
			cur.to = arg
			reply("250 ok")
		case "DATA":
			if s.stallData {
				_, _ = tp.ReadLine() // until the client gives up and closes
				return
			}
			reply("354 go")
			data, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			cur.data = data
			s.mu.Lock()
			s.got = append(s.got, cur)
			s.mu.Unlock()
			reply("250 queued")
		case "QUIT":
			reply("221 bye")
			return
		default:
			reply("502 unknown")
		}
	}
}

// selfSigned returns a server TLS config for 127.0.0.1 and a client config trusting it.
func selfSigned(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool}
}

var testMsg = Message{To: "ann@example.com", Subject: "Reset your password", Text: "open\n.\nhttps://example.com/reset-password?token=t"}

func checkDelivered(t *testing.T, r received, wantTLS, wantAuth bool) {
	t.Helper()
	if r.tls != wantTLS || r.authed != wantAuth {
		t.Fatalf("tls %v auth %v, want %v %v", r.tls, r.authed, wantTLS, wantAuth)
	}
	if !strings.HasPrefix(r.from, "FROM:<no-reply@localhost>") || r.to != "TO:<ann@example.com>" {
		t.Fatalf("envelope %q %q", r.from, r.to)
	}
	m, err := ParseMessage(bufio.NewReader(bytes.NewReader(r.data)))
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != testMsg.Subject || m.Text != testMsg.Text {
		t.Fatalf("received %+v", m)
	}
}

func TestSMTPUpgradesWithSTARTTLSAndAuthenticates(t *testing.T) {
	st, ct := selfSigned(t)
	srv := startSMTP(t, &smtpServer{tls: st, user: "ann", pass: "p@ss:word"})
	m, err := NewSMTP(srv.url("ann:p%40ss%3Aword"), WithTLSConfig(ct))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Send(context.Background(), testMsg); err != nil {
		t.Fatal(err)
	}
	got := srv.messages()
	if len(got) != 1 {
		t.Fatalf("%d messages", len(got))
	}
	checkDelivered(t, got[0], true, true)
}

func TestSMTPWithoutSTARTTLSOrAuth(t *testing.T) {
	srv := startSMTP(t, &smtpServer{})
	m, err := NewSMTP(srv.url(""))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Send(context.Background(), testMsg); err != nil {
		t.Fatal(err)
	}
	got := srv.messages()
	if len(got) != 1 {
		t.Fatalf("%d messages", len(got))
	}
	checkDelivered(t, got[0], false, false)
}

func TestSMTPRefusesAnUntrustedCertificate(t *testing.T) {
	st, _ := selfSigned(t)
	srv := startSMTP(t, &smtpServer{tls: st, user: "ann", pass: "secret"})
	m, err := NewSMTP(srv.url("ann:secret"))
	if err != nil {
		t.Fatal(err)
	}
	err = m.Send(context.Background(), testMsg)
	if err == nil || !strings.Contains(err.Error(), "starttls") {
		t.Fatalf("err %v, want a STARTTLS failure", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatal("error repeats the password")
	}
	if n := len(srv.messages()); n != 0 {
		t.Fatalf("%d messages delivered over an untrusted connection", n)
	}
}

func TestSMTPErrors(t *testing.T) {
	st, ct := selfSigned(t)
	t.Run("wrong password", func(t *testing.T) {
		srv := startSMTP(t, &smtpServer{tls: st, user: "ann", pass: "right"})
		m, _ := NewSMTP(srv.url("ann:wrong"), WithTLSConfig(ct))
		if err := m.Send(context.Background(), testMsg); err == nil || !strings.Contains(err.Error(), "auth") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("user but no AUTH offered", func(t *testing.T) {
		srv := startSMTP(t, &smtpServer{})
		m, _ := NewSMTP(srv.url("ann:pw"))
		if err := m.Send(context.Background(), testMsg); err == nil || !strings.Contains(err.Error(), "no AUTH") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("recipient refused", func(t *testing.T) {
		srv := startSMTP(t, &smtpServer{rejectTo: "ann@example.com"})
		m, _ := NewSMTP(srv.url(""))
		err := m.Send(context.Background(), testMsg)
		var tpErr *textproto.Error
		if !errors.As(err, &tpErr) || tpErr.Code != 550 {
			t.Fatalf("err %v, want the server's 550", err)
		}
	})
	t.Run("invalid message sends nothing", func(t *testing.T) {
		m, _ := NewSMTP("smtp://127.0.0.1:1")
		if err := m.Send(context.Background(), Message{To: "a@b.c\r\nBcc: e@f.g"}); !errors.Is(err, ErrInvalidMessage) {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("context ends a stalled delivery", func(t *testing.T) {
		srv := startSMTP(t, &smtpServer{stallData: true})
		m, _ := NewSMTP(srv.url(""))
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := m.Send(ctx, testMsg); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want the context's deadline", err)
		}
	})
}

func TestParseSMTPURL(t *testing.T) {
	c, err := ParseSMTPURL("smtp://user%40corp:pa%2Fss@mail.example.com:2525")
	if err != nil {
		t.Fatal(err)
	}
	if c != (SMTPConfig{Host: "mail.example.com", Port: "2525", Username: "user@corp", Password: "pa/ss"}) {
		t.Fatalf("%+v", c)
	}
	if s := c.String(); strings.Contains(s, "pa") && strings.Contains(s, "ss@") {
		t.Fatalf("String shows the password: %s", s)
	}
	if c, _ := ParseSMTPURL("smtps://mail.example.com"); c.Port != "465" || !c.ImplicitTLS {
		t.Fatalf("smtps %+v", c)
	}
	if c, _ := ParseSMTPURL("SMTP://[::1]"); c.Port != "587" || c.Host != "::1" {
		t.Fatalf("default port %+v", c)
	}
	for _, bad := range []string{
		"", "http://mail.example.com", "smtp://", "smtp://:pw@host", "smtp://host:0", "smtp://host:70000",
		"smtp://host:12a", "smtp://host/path", "smtp://host?x=1", "smtp://host#f", "smtp:opaque",
		"smtp://us%0Der:pw@host", "smtp://user:se cret@ho st",
	} {
		_, err := ParseSMTPURL(bad)
		if !errors.Is(err, ErrInvalidSMTPURL) {
			t.Errorf("%q: err %v", bad, err)
		}
		if err != nil && strings.Contains(err.Error(), "cret") {
			t.Errorf("%q: error repeats the password: %v", bad, err)
		}
	}
}
