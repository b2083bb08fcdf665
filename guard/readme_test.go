package guard_test

import (
	"os"
	"strings"
	"testing"
)

// TestREADMEQuickStart keeps the README's quick start true: its Go block marked
// <!-- guard quickstart --> is, line for line, the body of Example, which go test
// compiles and runs. Edit both together.
func TestREADMEQuickStart(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "<!-- guard quickstart -->")
	if !ok {
		t.Fatal("README.md has no <!-- guard quickstart --> marker")
	}
	_, after, ok = strings.Cut(after, "```go\n")
	block, _, ok2 := strings.Cut(after, "```")
	if !ok || !ok2 {
		t.Fatal("no ```go block after the marker")
	}
	src, err := os.ReadFile("example_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, body, _ := strings.Cut(string(src), "// quickstart:begin\n")
	body, _, _ = strings.Cut(body, "\t// quickstart:end")
	var want []string
	for _, l := range strings.Split(strings.TrimRight(body, "\n"), "\n") {
		want = append(want, strings.TrimPrefix(l, "\t"))
	}
	got := strings.Split(strings.TrimRight(block, "\n"), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("README quick start and Example differ.\nREADME:\n%s\nExample:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(got) > 15 {
		t.Fatalf("the quick start is %d lines; the promise is at most 15", len(got))
	}
}
