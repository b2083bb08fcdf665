package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"io"
	"strings"
	"testing"

	"github.com/nexus-ecosystem/nexus/auth"
	"github.com/nexus-ecosystem/nexus/ecoid"
)

func testSeed(b byte) []byte { return bytes.Repeat([]byte{b}, ed25519.SeedSize) }

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func pubB64(seed []byte) string {
	return b64(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
}

// edApp builds an app from env (plus a cheap bcrypt cost) without serving it.
func edApp(t *testing.T, env map[string]string) *services {
	t.Helper()
	env["NEXUS_BCRYPT_COST"] = "4"
	cfg, err := parseConfig(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	a, err := newServices(context.Background(), cfg, authTestLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.close() })
	return a
}

func TestEdDSAServerRotation(t *testing.T) {
	// A served registration answers EdDSA tokens carrying the configured kid.
	s := startServer(t, map[string]string{"NEXUS_BCRYPT_COST": "4", "NEXUS_JWT_ED25519_KEY": b64(testSeed(1)), "NEXUS_JWT_KID": "k1"})
	reg := s.register("ann@example.com")
	raw, _ := base64.RawURLEncoding.DecodeString(strings.Split(reg.AccessToken, ".")[0])
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil || h["alg"] != "EdDSA" || h["kid"] != "k1" {
		t.Fatalf("header %s %v", raw, err)
	}

	uid, sid := ecoid.New(ecoid.User), ecoid.New(ecoid.Session)
	old := edApp(t, map[string]string{"NEXUS_JWT_ED25519_KEY": b64(ed25519.NewKeyFromSeed(testSeed(1))), "NEXUS_JWT_KID": "k1"})
	oldTok, _, err := old.issuer.Issue(auth.AccessToken, uid, sid)
	if err != nil {
		t.Fatal(err)
	}
	rotated := edApp(t, map[string]string{"NEXUS_JWT_ED25519_KEY": b64(testSeed(2)), "NEXUS_JWT_KID": "k2",
		"NEXUS_JWT_OLD_KEYS": " k0=" + pubB64(testSeed(9)) + ", k1=" + pubB64(testSeed(1)) + ","})
	if _, err := rotated.issuer.Verify(oldTok, auth.AccessToken); err != nil {
		t.Fatalf("old token during rotation: %v", err)
	}
	done := edApp(t, map[string]string{"NEXUS_JWT_ED25519_KEY": b64(testSeed(2)), "NEXUS_JWT_KID": "k2"})
	if _, err := done.issuer.Verify(oldTok, auth.AccessToken); err == nil {
		t.Fatal("old token accepted after its kid was removed")
	}
}

func TestEdDSAServerSettings(t *testing.T) {
	seed := b64(testSeed(1))
	corrupt := ed25519.NewKeyFromSeed(testSeed(1))
	corrupt[63] ^= 1
	for name, env := range map[string]map[string]string{
		"both secret and key":  {"NEXUS_JWT_SECRET": "test-secret-test-secret-test-secret!", "NEXUS_JWT_ED25519_KEY": seed, "NEXUS_JWT_KID": "k1"},
		"key without kid":      {"NEXUS_JWT_ED25519_KEY": seed},
		"kid without key":      {"NEXUS_JWT_KID": "k1"},
		"old keys without key": {"NEXUS_JWT_OLD_KEYS": "k0=" + pubB64(testSeed(2))},
		"not base64":           {"NEXUS_JWT_ED25519_KEY": "%%%" + seed, "NEXUS_JWT_KID": "k1"},
		"wrong size":           {"NEXUS_JWT_ED25519_KEY": b64(testSeed(1)[:31]), "NEXUS_JWT_KID": "k1"},
		"corrupt private key":  {"NEXUS_JWT_ED25519_KEY": b64(corrupt), "NEXUS_JWT_KID": "k1"},
		"old key no kid":       {"NEXUS_JWT_ED25519_KEY": seed, "NEXUS_JWT_KID": "k1", "NEXUS_JWT_OLD_KEYS": "=" + pubB64(testSeed(2))},
		"old key no equals":    {"NEXUS_JWT_ED25519_KEY": seed, "NEXUS_JWT_KID": "k1", "NEXUS_JWT_OLD_KEYS": "k0"},
		"old key wrong size":   {"NEXUS_JWT_ED25519_KEY": seed, "NEXUS_JWT_KID": "k1", "NEXUS_JWT_OLD_KEYS": "k0=" + seed[:20]},
		"old key twice":        {"NEXUS_JWT_ED25519_KEY": seed, "NEXUS_JWT_KID": "k1", "NEXUS_JWT_OLD_KEYS": "k0=" + pubB64(testSeed(2)) + ",k0=" + pubB64(testSeed(3))},
		"old kid is the kid":   {"NEXUS_JWT_ED25519_KEY": seed, "NEXUS_JWT_KID": "k1", "NEXUS_JWT_OLD_KEYS": "k1=" + pubB64(testSeed(2))},
	} {
		err := run(context.Background(), []string{"-addr", "127.0.0.1:0"}, func(k string) string { return env[k] }, io.Discard, nil)
		if err == nil {
			t.Errorf("%s: server started", name)
			continue
		}
		for _, v := range env {
			if len(v) > 8 && strings.Contains(err.Error(), strings.TrimPrefix(v, "%%%")) {
				t.Errorf("%s: error %q shows a setting's value", name, err)
			}
		}
		if !strings.Contains(err.Error(), "NEXUS_JWT_") {
			t.Errorf("%s: error %q does not name the variable", name, err)
		}
	}
}
