package mail

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestDirWritesOneFilePerMessage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "mail")
	d, err := NewDir(dir, WithFrom("app@example.com"))
	if err != nil {
		t.Fatal(err)
	}
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := d.Send(context.Background(), Message{To: "ann@example.com", Subject: "n", Text: strings.Repeat("x", i)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != n {
		t.Fatalf("%d files, want %d (no temporary files left)", len(entries), n)
	}
	seen := map[int]bool{}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".eml") {
			t.Fatalf("file %q", e.Name())
		}
		info, _ := e.Info()
		if info.Mode().Perm() != 0o600 {
			t.Errorf("mode %v, want 0600 (mail holds one-time links)", info.Mode().Perm())
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m, err := ParseMessage(f)
		_ = f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if m.From != "<app@example.com>" {
			t.Errorf("from %q", m.From)
		}
		seen[len(m.Text)] = true
	}
	if len(seen) != n {
		t.Fatalf("messages lost or duplicated: %v", seen)
	}
}

func TestDirRefusesBadInput(t *testing.T) {
	if _, err := NewDir(""); err == nil {
		t.Error("empty dir accepted")
	}
	if _, err := NewDir(t.TempDir(), WithFrom("not an address")); err == nil {
		t.Error("bad default sender accepted")
	}
	d, err := NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Send(context.Background(), Message{To: "x\r\nBcc: y@example.com"}); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("err %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Send(ctx, Message{To: "ann@example.com"}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled: err %v", err)
	}
	if entries, _ := os.ReadDir(d.Path()); len(entries) != 0 {
		t.Errorf("%d files written for refused messages", len(entries))
	}
}
