package dsn

import (
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that what it keeps never carries
// an azure_* key to pq, and that re-parsing its output is stable.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"host=h user=u azure_client_id=x",
		"postgres://u@h/db?azure_scope=s&sslmode=require",
		`a='b\'c' d=e`,
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Parse(s)
		if err != nil {
			return
		}
		again, err := Parse(got.PQ)
		if err != nil {
			t.Fatalf("Parse(%q) ok but its output %q does not parse: %v", s, got.PQ, err)
		}
		if len(again.Azure) != 0 {
			t.Fatalf("output %q still has azure keys %v", got.PQ, again.Azure)
		}
		if again.PQ != got.PQ {
			t.Fatalf("not stable: %q -> %q", got.PQ, again.PQ)
		}
		for k := range got.Keys {
			if strings.HasPrefix(strings.ToLower(k), AzurePrefix) {
				t.Fatalf("azure key %q counted as a pq key", k)
			}
		}
	})
}
