package event

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// ContentKey is the key setting that makes a row's identity its content.
const ContentKey = "*"

// MaxTokenLen bounds a row key token. A longer token cannot be a NATS subject
// token or KV key in practice; such a row counts as invalid.
const MaxTokenLen = 1024

// ErrNullKey reports a row whose key value is missing or null.
var ErrNullKey = errors.New("key value is null")

// TokenPart renders one key value's text as a token component: text matching
// ^[A-Za-z0-9_-]{1,128}$ stands as it is, anything else becomes "=" followed
// by the unpadded base64url of its UTF-8 bytes.
func TokenPart(text string) string {
	if plainToken(text) {
		return text
	}
	return "=" + base64.RawURLEncoding.EncodeToString([]byte(text))
}

func plainToken(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// JoinToken returns the row key token of the key values' texts (in the
// order of the key columns): each TokenPart, joined with "/". ParseToken is
// its inverse.
func JoinToken(texts ...string) string {
	parts := make([]string, len(texts))
	for i, t := range texts {
		parts[i] = TokenPart(t)
	}
	return strings.Join(parts, "/")
}

// ParseToken splits a row key token into the text of each key value. It is
// the inverse of JoinToken.
func ParseToken(tok string) ([]string, error) {
	if tok == "" {
		return nil, errors.New("empty token")
	}
	parts := strings.Split(tok, "/")
	out := make([]string, len(parts))
	for i, p := range parts {
		if strings.HasPrefix(p, "=") {
			b, err := base64.RawURLEncoding.DecodeString(p[1:])
			if err != nil {
				return nil, fmt.Errorf("token part %d: %w", i, err)
			}
			out[i] = string(b)
			continue
		}
		if !plainToken(p) {
			return nil, fmt.Errorf("token part %d (%q) is neither plain nor encoded", i, p)
		}
		out[i] = p
	}
	return out, nil
}

// Keyer computes the row key token of rows of one schema.
type Keyer struct {
	schema  *Schema
	cols    []int // key column positions, in configured order
	sorted  []int // the same, in byte order of keys (for the JSON key object)
	content bool
}

// NewKeyer returns a keyer for the configured key columns, or for row content
// when key is ["*"]. It fails when a key column is not in the schema.
func NewKeyer(s *Schema, key []string) (*Keyer, error) {
	k := &Keyer{schema: s}
	if len(key) == 1 && key[0] == ContentKey {
		k.content = true
		return k, nil
	}
	if len(key) == 0 {
		return nil, errors.New("no key columns")
	}
	for _, name := range key {
		i := s.Index(name)
		if i < 0 {
			return nil, fmt.Errorf("key column %q is not in the report (columns: %s)", name, columnKeys(s))
		}
		k.cols = append(k.cols, i)
	}
	k.sorted = slices.Clone(k.cols)
	slices.SortFunc(k.sorted, func(a, b int) int { return strings.Compare(s.Columns[a].Key, s.Columns[b].Key) })
	return k, nil
}

func columnKeys(s *Schema) string {
	keys := make([]string, len(s.Columns))
	for i, c := range s.Columns {
		keys[i] = c.Key
	}
	return strings.Join(keys, ", ")
}

// Content reports whether the keyer keys rows by content.
func (k *Keyer) Content() bool { return k.content }

// IsKeyColumn reports whether the column with the given key is one of the
// key columns (never, for content keys).
func (k *Keyer) IsKeyColumn(key string) bool {
	for _, i := range k.cols {
		if k.schema.Columns[i].Key == key {
			return true
		}
	}
	return false
}

// Token returns the token of a row. hash is the row's RowHash, used by
// content keys. Content tokens of identical rows in one pass are told apart
// by the caller (ContentToken with n > 1). It fails with ErrNullKey when a key
// value is null, or when the token would exceed MaxTokenLen.
func (k *Keyer) Token(vals []Value, hash Hash) (string, error) {
	if k.content {
		return ContentToken(hash, 1), nil
	}
	if len(k.cols) == 1 { // the common case, without building a string
		v := vals[k.cols[0]]
		if v.IsNull() {
			return "", fmt.Errorf("%w: column %q", ErrNullKey, k.schema.Columns[k.cols[0]].Key)
		}
		t := TokenPart(v.Raw)
		if len(t) > MaxTokenLen {
			return "", fmt.Errorf("key token longer than %d bytes", MaxTokenLen)
		}
		return t, nil
	}
	var b strings.Builder
	for n, i := range k.cols {
		v := vals[i]
		if v.IsNull() {
			return "", fmt.Errorf("%w: column %q", ErrNullKey, k.schema.Columns[i].Key)
		}
		if n > 0 {
			b.WriteByte('/')
		}
		b.WriteString(TokenPart(v.Raw))
		if b.Len() > MaxTokenLen {
			return "", fmt.Errorf("key token longer than %d bytes", MaxTokenLen)
		}
	}
	return b.String(), nil
}

// AppendKey appends the event's "key" object for a row: the key columns, or
// the whole row for content keys.
func (k *Keyer) AppendKey(b []byte, vals []Value) []byte {
	if k.content {
		return k.schema.AppendRow(b, vals)
	}
	return k.schema.AppendSubset(b, vals, k.sorted)
}

// ContentToken returns the token of the n-th identical row (n from 1) with the
// given hash: "h" and the 32 lowercase hex digits of the hash, with "-n"
// appended for n > 1.
func ContentToken(h Hash, n int) string {
	t := "h" + hex.EncodeToString(h[:])
	if n > 1 {
		t += fmt.Sprintf("-%d", n)
	}
	return t
}
