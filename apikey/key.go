package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/nexus-ecosystem/nexus/ecoid"
)

// The layout of a plain key: "<id>.<secret>", where <id> is an EcoID of type api and
// <secret> is 43 random base62 characters (256 bits) followed by a 6-character base62
// CRC-32 checksum of everything before it. The checksum lets Parse reject typos and
// garbage before any store lookup, and lets secret scanners recognise a leaked key
// without asking us, as GitHub's tokens do.
const (
	randomLen   = 43 // 62^43 > 2^256
	checksumLen = 6  // 62^6 > 2^32
	// SecretLen is the length of the secret part of a plain key.
	SecretLen = randomLen + checksumLen
	// PlainLen is the length of every plain key: an EcoID, a dot and the secret.
	PlainLen = ecoid.Len + 1 + SecretLen

	base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)

// ErrMalformed is wrapped by every error Parse returns: the string is not a plain key
// (wrong length, wrong ID, a character outside base62, or a checksum that does not match).
var ErrMalformed = errors.New("apikey: malformed key")

// Hash is the SHA-256 of a plain key, the only form in which a key is stored.
type Hash [sha256.Size]byte

// HashKey returns the SHA-256 of the plain key. It does not allocate.
func HashKey(plain string) Hash {
	var buf [PlainLen]byte
	if len(plain) == PlainLen {
		copy(buf[:], plain)
		return sha256.Sum256(buf[:])
	}
	return sha256.Sum256([]byte(plain))
}

// Equal reports whether h and other are the same hash, in constant time.
func (h Hash) Equal(other Hash) bool {
	// Eight bytes at a time, every word whatever the earlier ones held: as constant in
	// time as subtle.ConstantTimeCompare, which goes a byte at a time (a quarter of the
	// verification of a cached key).
	var v uint64
	for i := 0; i < len(h); i += 8 {
		v |= binary.LittleEndian.Uint64(h[i:]) ^ binary.LittleEndian.Uint64(other[i:])
	}
	return v == 0
}

// IsZero reports whether h is the zero hash (no hash).
func (h Hash) IsZero() bool { return h == Hash{} }

// newPlain returns a fresh plain key for id.
func newPlain(id ecoid.ID) string {
	var b [PlainLen]byte
	copy(b[:], id)
	b[ecoid.Len] = '.'
	fillBase62(b[ecoid.Len+1 : ecoid.Len+1+randomLen])
	putChecksum(b[:])
	return string(b[:])
}

// fillBase62 fills dst with uniformly random base62 characters from crypto/rand, by
// rejection sampling: bytes of 248 and above (4 × 62) are discarded so that every
// character is equally likely.
func fillBase62(dst []byte) {
	var pool [64]byte
	i := 0
	for i < len(dst) {
		// crypto/rand.Read never returns an error since Go 1.24.
		_, _ = rand.Read(pool[:])
		for _, c := range pool {
			if c >= 248 {
				continue
			}
			dst[i] = base62[c%62]
			i++
			if i == len(dst) {
				break
			}
		}
	}
}

// putChecksum writes the checksum of b[:PlainLen-checksumLen] into the last checksumLen
// bytes of b.
func putChecksum(b []byte) {
	sum := crc32.ChecksumIEEE(b[:PlainLen-checksumLen])
	for i := PlainLen - 1; i >= PlainLen-checksumLen; i-- {
		b[i] = base62[sum%62]
		sum /= 62
	}
}

// base62Value maps a byte to its base62 value, or 0xFF when it is not a base62 digit.
var base62Value = func() (t [256]byte) {
	for i := range t {
		t[i] = 0xFF
	}
	for i := 0; i < len(base62); i++ {
		t[base62[i]] = byte(i)
	}
	return t
}()

// Parse checks that s is a well-formed plain key and returns its ID. It is strict: the
// exact length, an EcoID of type api, a dot, 49 base62 characters and a matching
// checksum; no surrounding space. Every error wraps ErrMalformed and never contains the
// secret. Parse does not allocate on success.
func Parse(s string) (ecoid.ID, error) {
	if len(s) != PlainLen {
		return "", fmt.Errorf("%w: length %d, want %d", ErrMalformed, len(s), PlainLen)
	}
	id, err := ecoid.Parse(s[:ecoid.Len])
	if err != nil {
		return "", fmt.Errorf("%w: the part before the dot is not an EcoID", ErrMalformed)
	}
	if t := ecoid.Type(s[len("eco_") : len("eco_")+3]); t != ecoid.APIKey { // id is valid: no second parse
		return "", fmt.Errorf("%w: the ID is of type %q, not %q", ErrMalformed, t, ecoid.APIKey)
	}
	if s[ecoid.Len] != '.' {
		return "", fmt.Errorf("%w: no dot after the ID", ErrMalformed)
	}
	for i := ecoid.Len + 1; i < PlainLen; i++ {
		if base62Value[s[i]] == 0xFF {
			return "", fmt.Errorf("%w: the secret has a character outside 0-9A-Za-z", ErrMalformed)
		}
	}
	sum := crcString(s[:PlainLen-checksumLen])
	for i := PlainLen - 1; i >= PlainLen-checksumLen; i-- {
		if base62Value[s[i]] != byte(sum%62) {
			return "", fmt.Errorf("%w: checksum mismatch", ErrMalformed)
		}
		sum /= 62
	}
	return id, nil
}

// crcTables are the slicing-by-8 tables of the IEEE CRC-32, so that Parse can checksum
// a string without copying it to a []byte (hash/crc32 takes a slice, and its slice
// escapes, which would cost Parse an allocation).
var crcTables = func() (t [8][256]uint32) {
	t[0] = *crc32.IEEETable
	for i := 0; i < 256; i++ {
		c := t[0][i]
		for j := 1; j < 8; j++ {
			c = t[0][c&0xFF] ^ c>>8
			t[j][i] = c
		}
	}
	return t
}()

// crcString returns crc32.ChecksumIEEE of s.
func crcString(s string) uint32 {
	crc := ^uint32(0)
	for len(s) >= 8 {
		crc ^= uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
		crc = crcTables[0][s[7]] ^ crcTables[1][s[6]] ^ crcTables[2][s[5]] ^ crcTables[3][s[4]] ^
			crcTables[4][crc>>24] ^ crcTables[5][crc>>16&0xFF] ^ crcTables[6][crc>>8&0xFF] ^ crcTables[7][crc&0xFF]
		s = s[8:]
	}
	for i := 0; i < len(s); i++ {
		crc = crcTables[0][byte(crc)^s[i]] ^ crc>>8
	}
	return ^crc
}
