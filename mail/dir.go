package mail

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

var _ Mailer = (*Dir)(nil)

// Dir is a Mailer that writes each message as one RFC 5322 file named
// <UTC time>-<random>.eml in a directory: what development servers and tests use instead
// of a mail server. Files appear atomically (written under a temporary name, then
// renamed), so a reader never sees half a message. It is safe for concurrent use.
type Dir struct {
	dir  string
	opts options
}

// NewDir returns a Dir writing into dir, creating it (mode 0700) when it is missing. It
// returns an error when dir is empty or cannot be created, or when WithFrom names an
// invalid address.
func NewDir(dir string, opts ...Option) (*Dir, error) {
	if dir == "" {
		return nil, errors.New("mail: empty directory")
	}
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("mail: create directory: %w", err)
	}
	return &Dir{dir: dir, opts: o}, nil
}

// Path returns the directory messages are written to.
func (d *Dir) Path() string { return d.dir }

// Send implements Mailer: it writes m as a new .eml file (mode 0600).
func (d *Dir) Send(ctx context.Context, m Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	now := d.opts.now().UTC()
	env, err := build(m, d.opts.from, now)
	if err != nil {
		return err
	}
	var r [6]byte
	_, _ = rand.Read(r[:])
	name := now.Format("20060102T150405.000000000Z") + "-" + hex.EncodeToString(r[:]) + ".eml"
	tmp, err := os.CreateTemp(d.dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("mail: write message: %w", err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // a no-op once renamed
	if _, err := tmp.Write(env.data); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("mail: write message: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("mail: write message: %w", err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(d.dir, name)); err != nil {
		return fmt.Errorf("mail: write message: %w", err)
	}
	return nil
}
