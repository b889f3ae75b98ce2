package colname

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode/utf8"
)

// Hashed is the name of a column whose key cannot be its name: the key
// without NUL bytes, cut on a character boundary so that the whole is at
// most maxBytes long (0: not cut), "_" and the first 8 hex digits of the
// SHA-256 of the key. It depends on the key alone.
func Hashed(key string, maxBytes int) string {
	sum := sha256.Sum256([]byte(key))
	suffix := "_" + hex.EncodeToString(sum[:4])
	base := strings.ReplaceAll(key, "\x00", "")
	if maxBytes > 0 {
		n := max(maxBytes-len(suffix), 0)
		for n > 0 && n < len(base) && !utf8.RuneStart(base[n]) {
			n--
		}
		base = base[:min(n, len(base))]
	}
	return base + suffix
}
