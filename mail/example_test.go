package mail_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/nexus-ecosystem/nexus/mail"
)

// A directory mailer writes each message as an .eml file that any mail client opens.
func ExampleDir() {
	dir, _ := os.MkdirTemp("", "mail")
	defer os.RemoveAll(dir)
	m, err := mail.NewDir(dir, mail.WithFrom("Acme <no-reply@acme.example>"))
	if err != nil {
		panic(err)
	}
	err = m.Send(context.Background(), mail.Message{
		To: "ann@example.com", Subject: "Welcome", Text: "Hello Ann.",
	})
	fmt.Println(err)

	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	f, _ := os.Open(files[0])
	defer f.Close()
	got, _ := mail.ParseMessage(f)
	fmt.Println(got.From, got.To, got.Subject, got.Text)
	// Output:
	// <nil>
	// "Acme" <no-reply@acme.example> <ann@example.com> Welcome Hello Ann.
}

// ParseSMTPURL reads NEXUS_SMTP_URL; String never shows the password.
func ExampleParseSMTPURL() {
	c, err := mail.ParseSMTPURL("smtp://postmaster:s3cret@mail.example.com:587")
	fmt.Println(c.Host, c.Port, c.Username, err)
	fmt.Println(c)
	// Output:
	// mail.example.com 587 postmaster <nil>
	// smtp://postmaster@mail.example.com:587
}
