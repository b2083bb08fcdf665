package interop

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium returns the path of a Chromium binary: NEXUS_TEST_CHROMIUM, or Debian's
// /usr/bin/chromium. Without one the test skips, or fails when NEXUS_TEST_REQUIRE=1.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("NEXUS_TEST_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	if os.Getenv("NEXUS_TEST_REQUIRE") == "1" {
		t.Fatal("no Chromium (set NEXUS_TEST_CHROMIUM or apt-get install chromium) and NEXUS_TEST_REQUIRE=1")
	}
	t.Skip("no Chromium: set NEXUS_TEST_CHROMIUM or apt-get install chromium")
	return ""
}

// browser starts headless Chromium with the flags this machine's closed network needs.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // CI runs as root
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// TestBrowserSignsInThroughTheSignInPage drives the built-in sign-in page in headless
// Chromium: the relying party sends the browser to Nexus, the user types email and
// password into the page, and the browser comes back to the relying party signed in
// (code exchanged, id_token verified by go-oidc). A second visit needs no password: the
// Nexus session cookie signs the user in.
func TestBrowserSignsInThroughTheSignInPage(t *testing.T) {
	ctx := browser(t)
	rp := newRelyingParty(t)
	n := startNexus(t, rp.redirectURI())
	rp.connect(t, n)

	if err := chromedp.Do(ctx, chromedp.Navigate(rp.srv.URL+"/login"), chromedp.WaitVisible(`#email`)); err != nil {
		t.Fatalf("browser: open the sign-in page: %v", err)
	}
	title, err := chromedp.Run(ctx, chromedp.Title())
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(`#email`, userEmail),
		chromedp.SendKeys(`#password`, userPassword),
		chromedp.Click(`#submit`),
		chromedp.WaitVisible(`#who`),
	); err != nil {
		t.Fatalf("browser sign-in: %v", err)
	}
	who, err := chromedp.Run(ctx, chromedp.Text(`#who`))
	if err != nil {
		t.Fatal(err)
	}
	res := <-rp.results
	if res.Err != nil || !strings.Contains(who, userEmail) || !strings.Contains(title, "Atlas") {
		t.Fatalf("after sign-in the page says %q (title %q), RP: %v", who, title, res.Err)
	}

	// Signed in at Nexus now: a second sign-in skips the page.
	if err := chromedp.Do(ctx, chromedp.Navigate(rp.srv.URL+"/login"), chromedp.WaitVisible(`#who`)); err != nil {
		t.Fatalf("second visit: %v", err)
	}
	who, err = chromedp.Run(ctx, chromedp.Text(`#who`))
	if err != nil {
		t.Fatal(err)
	}
	if res := <-rp.results; res.Err != nil || !strings.Contains(who, userEmail) {
		t.Fatalf("second visit: %q %v", who, res.Err)
	}
}

// TestBrowserWrongPasswordStaysOnThePage: a wrong password shows the error on the page
// and sends nothing to the relying party.
func TestBrowserWrongPasswordStaysOnThePage(t *testing.T) {
	ctx := browser(t)
	rp := newRelyingParty(t)
	n := startNexus(t, rp.redirectURI())
	rp.connect(t, n)
	if err := chromedp.Do(ctx,
		chromedp.Navigate(rp.srv.URL+"/login"),
		chromedp.WaitVisible(`#email`),
		chromedp.SendKeys(`#email`, userEmail),
		chromedp.SendKeys(`#password`, "not-the-password-1A!"),
		chromedp.Click(`#submit`),
		chromedp.WaitVisible(`#error`),
	); err != nil {
		t.Fatalf("browser: %v", err)
	}
	msg, err := chromedp.Run(ctx, chromedp.Text(`#error`))
	if err != nil {
		t.Fatal(err)
	}
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(msg, "Wrong") || !strings.HasPrefix(loc, n.srv.URL) {
		t.Fatalf("wrong password: message %q at %s", msg, loc)
	}
	select {
	case res := <-rp.results:
		t.Fatalf("the relying party was called: %+v", res)
	default:
	}
}
