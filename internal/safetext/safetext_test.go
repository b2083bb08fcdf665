package safetext

import "testing"

func TestClean(t *testing.T) {
	for s, want := range map[string]bool{
		"Ann":               true,
		"Zoë Ørsted":        true,
		"محمد\u200Cرضا":     true, // ZWNJ, as Persian names need
		"👩\u200D💻 dev":      true, // ZWJ emoji
		"a\u200Fb":          true, // RLM
		"":                  true,
		"bad\x00name":       false,
		"tab\tname":         false,
		"c1\u0085x":         false,
		"del\x7f":           false,
		"Ann\u202Egnp.exe":  false,
		"\u2066admin\u2069": false,
		"x\u202Ay":          false,
		"\xff":              false,
	} {
		if got := Clean(s); got != want {
			t.Errorf("Clean(%q) = %v, want %v", s, got, want)
		}
	}
}
