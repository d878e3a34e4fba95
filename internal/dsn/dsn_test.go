package dsn

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/lib/pq"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		pq    string
		azure map[string]string
		keys  []string
	}{
		{
			name:  "key=value with azure keys removed",
			in:    "host=srv.postgres.database.azure.com user=app dbname=orders azure_client_id=abc sslmode=verify-full",
			pq:    "host=srv.postgres.database.azure.com user=app dbname=orders sslmode=verify-full",
			azure: map[string]string{"azure_client_id": "abc"},
			keys:  []string{"dbname", "host", "sslmode", "user"},
		},
		{
			name:  "quoted values and escapes survive",
			in:    `application_name='my app' options='-c search_path=a\'b' AZURE_SCOPE = 'x y'`,
			pq:    `application_name='my app' options='-c search_path=a\'b'`,
			azure: map[string]string{"azure_scope": "x y"},
			keys:  []string{"application_name", "options"},
		},
		{
			name:  "empty quoted value",
			in:    "user='' host=h",
			pq:    "user='' host=h",
			azure: map[string]string{},
			keys:  []string{"host", "user"},
		},
		{
			name:  "URL",
			in:    "postgres://app@srv:5433/orders?sslmode=require&azure_credential=managed_identity&application_name=x",
			pq:    "postgres://app@srv:5433/orders?application_name=x&sslmode=require",
			azure: map[string]string{"azure_credential": "managed_identity"},
			keys:  []string{"application_name", "dbname", "host", "port", "sslmode", "user"},
		},
		{
			name:  "URL with password is recorded, not kept in keys' values",
			in:    "postgresql://u:pw@h/db",
			pq:    "postgresql://u:pw@h/db",
			azure: map[string]string{},
			keys:  []string{"dbname", "host", "password", "user"},
		},
		{name: "empty", in: "", pq: "", azure: map[string]string{}, keys: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got.PQ != tt.pq {
				t.Errorf("PQ = %q, want %q", got.PQ, tt.pq)
			}
			if !reflect.DeepEqual(got.Azure, tt.azure) {
				t.Errorf("Azure = %v, want %v", got.Azure, tt.azure)
			}
			if keys := SortedKeys(got.Keys); !reflect.DeepEqual(keys, tt.keys) && !(len(keys) == 0 && len(tt.keys) == 0) {
				t.Errorf("Keys = %v, want %v", keys, tt.keys)
			}
		})
	}
}

// TestParseRoundTripsThroughPQ proves pq reads the cleaned string exactly as
// it would have read the original minus the azure_* keys.
func TestParseRoundTripsThroughPQ(t *testing.T) {
	for _, in := range []string{
		`host=a,b port=1,2 user=u dbname='d b' application_name='it\'s' target_session_attrs=read-write search_path=x azure_scope=s`,
		`postgres://u@h:5/db?sslmode=disable&azure_client_id=1&work_mem=64kB`,
	} {
		s, err := Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pq.NewConfig(s.PQ)
		if err != nil {
			t.Fatalf("pq rejects cleaned %q: %v", s.PQ, err)
		}
		for k := range got.Runtime {
			if strings.HasPrefix(k, AzurePrefix) {
				t.Errorf("pq would send %q to the server", k)
			}
		}
		if got.User != "u" {
			t.Errorf("user = %q", got.User)
		}
	}
}

func TestParseErrors(t *testing.T) {
	const secret = "hunter2-SECRET"
	tests := []struct{ name, in, want string }{
		{"missing equals", "host=h " + secret, `missing "="`},
		{"unterminated quote", "password='" + secret, "unterminated"},
		{"duplicate azure key", "azure_scope=a azure_scope=b", `"azure_scope" given twice`},
		{"bad URL", "postgres://u:" + secret + "@[::1", "not a valid postgres:// URL"},
		{"too long", "host=" + strings.Repeat("x", MaxLen), "longer than"},
		{"equals without key", "=" + secret, "without a key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.in)
			if err == nil {
				t.Fatal("want error")
			}
			if !errors.Is(err, ErrSyntax) {
				t.Errorf("error %v is not ErrSyntax", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
			if strings.Contains(err.Error(), secret) {
				t.Errorf("error leaks the secret: %q", err)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	const secret = "hunter2-SECRET"
	for _, in := range []string{
		"host=h password=" + secret + " user=u",
		"host=h password='" + secret + " x' user=u",
		"postgres://u:" + secret + "@h/db?sslmode=require",
		"postgres://u@h/db?password=" + secret,
		"password='" + secret, // malformed
		"postgres://u:" + secret + "@[::1",
	} {
		got := Redact(in)
		if strings.Contains(got, secret) {
			t.Errorf("Redact(%q) = %q leaks the secret", in, got)
		}
	}
	if got := Redact("host=h user=u"); got != "host=h user=u" {
		t.Errorf("Redact changed a string without secrets: %q", got)
	}
}

func TestQuoteValue(t *testing.T) {
	for in, want := range map[string]string{
		"plain": "plain",
		"":      "''",
		"a b":   "'a b'",
		`a'b\c`: `'a\'b\\c'`,
	} {
		if got := QuoteValue(in); got != want {
			t.Errorf("QuoteValue(%q) = %q, want %q", in, got, want)
		}
	}
}
