package colname

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestHashed(t *testing.T) {
	long := strings.Repeat("c", 63)
	for _, tc := range []struct {
		key  string
		max  int
		want string
	}{
		{"nul\x00byte", 0, "nulbyte_"},
		{long + "_one", 63, strings.Repeat("c", 54) + "_"},
		{"Ünïcødé " + strings.Repeat("é", 40), 63, "Ünïcødé "},
	} {
		got := Hashed(tc.key, tc.max)
		if !strings.HasPrefix(got, tc.want) || (tc.max > 0 && len(got) > tc.max) || len(got) < len(tc.want)+8 || got[len(got)-9] != '_' || !utf8.ValidString(got) {
			t.Errorf("Hashed(%q, %d) = %q", tc.key, tc.max, got)
		}
		if got != Hashed(tc.key, tc.max) {
			t.Errorf("Hashed(%q) is not the same twice", tc.key)
		}
	}
	if Hashed(long+"_one", 63) == Hashed(long+"_two", 63) {
		t.Error("two keys alike in their first 63 bytes got one name")
	}
}
