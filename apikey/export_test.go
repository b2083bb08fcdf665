package apikey

// WithChecksum returns s (a plain key, possibly edited) with its checksum recomputed.
func WithChecksum(s string) string {
	b := []byte(s)
	putChecksum(b)
	return string(b)
}

// CacheLen returns how many entries the verify cache of s holds.
func CacheLen(s *Service) int { return s.cache.len() }

// HasBlankOrControl is hasBlankOrControl, for the differential fuzz test.
var HasBlankOrControl = hasBlankOrControl
