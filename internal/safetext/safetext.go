// Package safetext tells whether text from outside is fit to be stored and shown to
// other people: the names of users, API keys and projects, and email addresses. One rule
// for all of them, so a name refused in one place is not accepted in another.
package safetext

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Unsafe reports whether r may not appear in such text: a control character (C0, DEL or
// C1; NUL would also fail in PostgreSQL) or a bidirectional embedding, override or isolate
// (U+202A–U+202E, U+2066–U+2069), which makes text shown to others read as something
// else ("Ann\u202Egnp.exe" shows as "Annexe.png"). The joiners (U+200C, U+200D) and marks
// (U+200E, U+200F) that Persian, Indic scripts and emoji need are allowed.
func Unsafe(r rune) bool {
	return unicode.IsControl(r) || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069)
}

// Clean reports whether s is valid UTF-8 without an Unsafe rune.
func Clean(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, Unsafe)
}
