package auth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
	"golang.org/x/text/unicode/norm"

	"github.com/nexus-ecosystem/nexus/auth"
)

// One password in the forms keyboards and input methods produce (issue 10.13).
var (
	pwNFC  = "Kat\u00e9-Horse-99!"           // é precomposed
	pwNFD  = "Kate\u0301-Horse-99!"          // e + combining acute
	pwWide = "Kat\u00e9-Horse-\uff19\uff19!" // full-width digits: NFKC folds them
)

func TestNormalizePassword(t *testing.T) {
	for _, in := range []string{pwNFC, pwNFD, pwWide} {
		if got := auth.NormalizePassword(in); got != pwNFC {
			t.Errorf("NormalizePassword(%q) = %q, want %q", in, got, pwNFC)
		}
	}
	if got := auth.NormalizePassword("\ufb01ne-Horse-9"); got != "fine-Horse-9" { // the ﬁ ligature
		t.Errorf("ligature: %q", got)
	}
}

func TestHasherNormalizes(t *testing.T) {
	h := auth.Hasher{Cost: bcrypt.MinCost}
	hash, err := h.Hash(pwNFD)
	if err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{pwNFC, pwNFD, pwWide} {
		if rehash, err := h.Verify(hash, pw); err != nil || rehash {
			t.Errorf("Verify(hash of NFD, %q) = %v, %v; want a match without rehash", pw, rehash, err)
		}
	}
	if bcrypt.CompareHashAndPassword([]byte(hash), []byte(pwNFC)) != nil {
		t.Error("the hash is not of the normalised password")
	}
	if _, err := h.Verify(hash, "Kate-Horse-99!"); !errors.Is(err, auth.ErrPasswordMismatch) {
		t.Errorf("a different password: %v", err)
	}
}

// A hash made before normalisation, of the password as typed, still verifies (by the
// fallback comparison) and is reported as needing a rehash.
func TestHasherVerifiesLegacyHashes(t *testing.T) {
	h := auth.Hasher{Cost: bcrypt.MinCost}
	legacy, _ := bcrypt.GenerateFromPassword([]byte(pwNFD), bcrypt.MinCost)
	if rehash, err := h.Verify(string(legacy), pwNFD); err != nil || !rehash {
		t.Fatalf("legacy hash with the password as typed: %v, %v; want a match needing rehash", rehash, err)
	}
	// The other form did not match before normalisation and still does not, until the
	// rehash stores the normalised form.
	if _, err := h.Verify(string(legacy), pwNFC); !errors.Is(err, auth.ErrPasswordMismatch) {
		t.Fatalf("legacy hash with the other form: %v", err)
	}
}

// NFKC can lengthen a password: the 72-byte limit applies to what is hashed.
func TestPasswordLimitAppliesToTheNormalisedForm(t *testing.T) {
	pw := "Aa1!" + strings.Repeat("\ufdfa", 3) // each U+FDFA (3 bytes) becomes 33 bytes
	if len(pw) > auth.MaxPasswordBytes {
		t.Fatal("test password too long already")
	}
	var pe *auth.PolicyError
	if err := auth.DefaultPolicy().Validate(pw); !errors.As(err, &pe) || !containsRule(pe.Failed, auth.RuleMaxBytes) {
		t.Fatalf("Validate: %v, want max_bytes", err)
	}
	if _, err := (auth.Hasher{Cost: bcrypt.MinCost}).Hash(pw); !errors.Is(err, auth.ErrPasswordTooLong) {
		t.Fatalf("Hash: %v", err)
	}
}

func containsRule(rs []auth.Rule, r auth.Rule) bool {
	for _, x := range rs {
		if x == r {
			return true
		}
	}
	return false
}

func TestEmailNormalisation(t *testing.T) {
	nfc, err1 := auth.NormalizeEmail("Kat\u00e9@Example.com")
	nfd, err2 := auth.NormalizeEmail("kate\u0301@example.com")
	if err1 != nil || err2 != nil || nfc != nfd || nfc != "kat\u00e9@example.com" {
		t.Fatalf("NFC %q (%v), NFD %q (%v): want one address in NFC", nfc, err1, nfd, err2)
	}
}

// TestUnicodeFormsAreOneAccount: katé in NFC and NFD is one account, and a password
// registered in one form logs in with the other (issue 10.13), on every store.
func TestUnicodeFormsAreOneAccount(t *testing.T) { eachStore(t, testUnicodeFormsAreOneAccount) }

func testUnicodeFormsAreOneAccount(t *testing.T, st func(*auth.Config)) {
	ctx := context.Background()
	f := newFixture(t, st)
	res, err := f.svc.Register(ctx, client, "kat\u00e9@example.com", pwNFD, "Kate")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Register(ctx, client, "kate\u0301@example.com", goodPassword, ""); !errors.Is(err, auth.ErrEmailTaken) {
		t.Fatalf("registering the NFD form of a taken email: %v", err)
	}
	for _, c := range []struct{ email, pw string }{
		{"kate\u0301@example.com", pwNFC}, {"KAT\u00c9@example.com", pwWide}, {"kat\u00e9@example.com", pwNFD},
	} {
		got, err := f.svc.Login(ctx, client, c.email, c.pw)
		if err != nil || got.User.ID != res.User.ID {
			t.Fatalf("login %q with %q: %v", c.email, c.pw, err)
		}
	}
}

// TestLoginRehashesUnnormalisedHashes: an account whose hash was made from the password
// as typed (before normalisation) logs in with that form, its hash is replaced by one of
// the normalised form, and from then on every form works.
func TestLoginRehashesUnnormalisedHashes(t *testing.T) { eachStore(t, testLoginRehashesUnnormalised) }

func testLoginRehashesUnnormalised(t *testing.T, st func(*auth.Config)) {
	ctx := context.Background()
	f := newFixture(t, st)
	res := f.register(t, "ann@example.com")
	legacy, _ := bcrypt.GenerateFromPassword([]byte(pwNFD), bcrypt.MinCost)
	if err := f.store.SetPasswordHash(ctx, res.User.ID, string(legacy), f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Login(ctx, client, "ann@example.com", pwNFD); err != nil {
		t.Fatalf("login with the legacy form: %v", err)
	}
	h, _ := f.store.PasswordHash(ctx, res.User.ID)
	if h == string(legacy) || bcrypt.CompareHashAndPassword([]byte(h), []byte(pwNFC)) != nil {
		t.Fatal("the hash was not replaced by one of the normalised password")
	}
	for _, pw := range []string{pwNFC, pwNFD, pwWide} {
		if _, err := f.svc.Login(ctx, client, "ann@example.com", pw); err != nil {
			t.Fatalf("login with %q after the rehash: %v", pw, err)
		}
	}
}

// FuzzNormalizePassword: no panic; the result is NFKC, normalising is idempotent, every
// canonically equivalent form gives the same result, and valid UTF-8 stays valid.
func FuzzNormalizePassword(f *testing.F) {
	for _, s := range []string{pwNFC, pwNFD, pwWide, "", "\xff\xfe", "\ufdfa", "\u0958", "a\u0308\u0301", "\ufb01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out := auth.NormalizePassword(in)
		if again := auth.NormalizePassword(out); again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q", in, out, again)
		}
		if !utf8.ValidString(in) {
			return
		}
		if !utf8.ValidString(out) || !norm.NFKC.IsNormalString(out) {
			t.Fatalf("NormalizePassword(%q) = %q is not NFKC", in, out)
		}
		for _, form := range []norm.Form{norm.NFC, norm.NFD, norm.NFKD} {
			if got := auth.NormalizePassword(form.String(in)); got != out {
				t.Fatalf("form %v of %q normalises to %q, the input to %q", form, in, got, out)
			}
		}
	})
}
