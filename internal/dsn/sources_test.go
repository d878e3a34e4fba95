package dsn

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lib/pq"
)

// noPGEnv unsets every variable pq reads (PG*, SSLPG*), restoring them after
// the test: an empty PGHOST would count as set.
func noPGEnv(tb testing.TB) {
	tb.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "SSLPG") {
			tb.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
}

// hosts lists what pq dials: host, hostaddr and port of each entry.
func hosts(cfg pq.Config) []string {
	out := []string{cfg.Host + "|" + addrString(cfg.Hostaddr) + "|" + strconv.Itoa(int(cfg.Port))}
	for _, m := range cfg.Multi {
		out = append(out, m.Host+"|"+addrString(m.Hostaddr)+"|"+strconv.Itoa(int(m.Port)))
	}
	return out
}

// pq applies a service file after the string, and prepends comma lists in
// PGHOST, PGHOSTADDR and PGPORT to the string's own: PGSERVICE=dev turned
// host=prod… sslmode=verify-full into dev's host and sslmode=require. The
// string's keys now win or the conflict is refused, naming key and source;
// what the string does not give may still come from the environment.
func TestParseEnvironmentNeverOverridesDSN(t *testing.T) {
	noPGEnv(t)
	svc := filepath.Join(t.TempDir(), "pg_service.conf")
	if err := os.WriteFile(svc, []byte(`# test services
[dev]
host=dev-db.example.com
sslmode=require

[hosts]
host = a.example.com,b.example.com
port=6000

[dbonly]
dbname=orders
user=orders-api

[nested]
service=dev
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGSERVICEFILE", svc)
	const prod = "host=prod.postgres.database.azure.com sslmode=verify-full"
	refused := []struct {
		name, in string
		env      map[string]string
		want     []string // in the error
	}{
		{"PGSERVICE's host and sslmode", prod, map[string]string{"PGSERVICE": "dev"}, []string{"host", "PGSERVICE=dev", "connection string"}},
		{"service key's host", "service=dev " + prod, nil, []string{"host", `service "dev"`, "connection string"}},
		{"service's sslmode only", "service=dev sslmode=verify-full dbname=x", nil, []string{"sslmode", `service "dev"`}},
		{"PGSERVICE's sslmode", "sslmode=verify-full", map[string]string{"PGSERVICE": "dev"}, []string{"sslmode", "PGSERVICE=dev"}},
		{"service's host list", "service=hosts host=h", nil, []string{"host", `service "hosts"`}},
		{"service's port", "service=hosts port=5432", nil, []string{"port", `service "hosts"`}},
		{"URL's host", "postgres://prod.postgres.database.azure.com/db?sslmode=verify-full", map[string]string{"PGSERVICE": "dev"}, []string{"host", "PGSERVICE=dev"}},
		{"URL names the service", "postgres://prod.postgres.database.azure.com/db?service=dev", nil, []string{"host", `service "dev"`}},
		{"PGHOST list", prod, map[string]string{"PGHOST": "localhost,other.example.com"}, []string{"host", "PGHOST", "connection string"}},
		{"PGHOST list, empty DSN host", "host='' sslmode=verify-full", map[string]string{"PGHOST": "localhost,other.example.com"}, []string{"host", "PGHOST"}},
		{"PGPORT list", "host=a,b port=5", map[string]string{"PGPORT": "1,2"}, []string{"port", "PGPORT"}},
		{"PGHOSTADDR list", "host=a,b,c hostaddr=10.0.0.1,10.0.0.2", map[string]string{"PGHOSTADDR": "127.0.0.1,127.0.0.2"}, []string{"hostaddr", "PGHOSTADDR"}},
		{"PGHOSTADDR list pq refuses", "host=a,b hostaddr=10.0.0.1,10.0.0.2", map[string]string{"PGHOSTADDR": "127.0.0.1,127.0.0.2"}, []string{"PGHOSTADDR"}},
		{"PGHOST list extends the service's host", "service=hosts", map[string]string{"PGHOST": "x.example.com,y.example.com"}, []string{"host", "PGHOST", `service "hosts"`}},
		{"nested service", "service=nested host=h", nil, []string{"nested", "service"}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			p, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("accepted: dials %q with sslmode %q", hosts(p.Config), p.Config.SSLMode)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			var ce *ConflictError
			if !strings.Contains(tt.name, "nested") && !strings.Contains(tt.name, "pq refuses") && (!errors.As(err, &ce) || !errors.Is(err, ErrConflict)) {
				t.Errorf("%v is not a *ConflictError", err)
			}
		})
	}

	kept := []struct {
		name, in  string
		env       map[string]string
		wantHosts []string
		wantSSL   pq.SSLMode
		wantDB    string
	}{
		{"service gives what the DSN does not", "dbname=x", map[string]string{"PGSERVICE": "dev"}, []string{"dev-db.example.com||5432"}, "require", "x"},
		{"service without conflicting keys", "service=dbonly " + prod, nil, []string{"prod.postgres.database.azure.com||5432"}, "verify-full", "orders"},
		{"service's host list alone", "service=hosts dbname=d", nil, []string{"a.example.com||6000", "b.example.com||6000"}, "", "d"},
		{"DSN disables the service", "service='' " + prod, map[string]string{"PGSERVICE": "dev"}, []string{"prod.postgres.database.azure.com||5432"}, "verify-full", ""},
		{"single PGHOST: the DSN wins", prod, map[string]string{"PGHOST": "localhost", "PGPORT": "6543", "PGSSLMODE": "disable"}, []string{"prod.postgres.database.azure.com||6543"}, "verify-full", ""},
		{"PGHOST list, DSN without host", "dbname=d", map[string]string{"PGHOST": "localhost,other.example.com"}, []string{"localhost||5432", "other.example.com||5432"}, "", "d"},
		{"PGPORT list matches the DSN's hosts", "host=a,b", map[string]string{"PGPORT": "1,2"}, []string{"a||1", "b||2"}, "", ""},
	}
	for _, tt := range kept {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			p, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := hosts(p.Config); strings.Join(got, " ") != strings.Join(tt.wantHosts, " ") || p.Config.SSLMode != tt.wantSSL {
				t.Errorf("dials %q sslmode %q, want %q sslmode %q", got, p.Config.SSLMode, tt.wantHosts, tt.wantSSL)
			}
			if tt.wantDB != "" && p.Config.Database != tt.wantDB {
				t.Errorf("dbname %q, want %q", p.Config.Database, tt.wantDB)
			}
		})
	}
}
