package dsn

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lib/pq"
)

// Presence bits of FuzzServiceEnv's flags: which PG* variables are set and
// which keys the service entry "svc" holds.
const (
	fzPGHost = 1 << iota
	fzPGHostaddr
	fzPGPort
	fzPGSSLMode
	fzPGService // PGSERVICE=svc
	fzSvcHost
	fzSvcHostaddr
	fzSvcPort
	fzSvcSSLMode
	fzSvcDBName
)

// FuzzServiceEnv is the differential test of the precedence rule (run by
// CI as -fuzz=FuzzServiceEnv): random PG* variables and a random service
// entry together with a DSN. The reference is libpq's precedence — the
// string over the service file over the environment, a whole value from
// one source, never a list joined from two — computed by pq itself from
// one key=value string in which the environment's values come first, the
// service entry's next and the DSN's last (pq keeps a key's last value),
// parsed with no PG* variable set. What Parse accepts must equal it in
// every field (hosts, hostaddrs, ports, sslmode and the rest); what it
// refuses as a conflict must be one: the key given by both sources.
func FuzzServiceEnv(f *testing.F) {
	noPGEnv(f)
	dir := f.TempDir()
	svcFile, emptyFile := filepath.Join(dir, "pg_service.conf"), filepath.Join(dir, "empty.conf")
	if err := os.WriteFile(emptyFile, []byte("[svc]\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	const prod = "host=prod.postgres.database.azure.com sslmode=verify-full"
	for _, s := range []struct {
		dsn                              string
		pghost, pghostaddr, pgport, pgsl string
		sh, sa, sp, ss, sd               string
		flags                            uint16
	}{
		// The two findings.
		{prod, "", "", "", "", "dev-db.example.com", "", "", "require", "", fzPGService | fzSvcHost | fzSvcSSLMode},
		{prod, "localhost,other.example.com", "", "", "", "", "", "", "", "", fzPGHost},
		{"service=svc " + prod, "", "", "", "", "dev-db.example.com", "", "6000", "require", "d", fzSvcHost | fzSvcPort | fzSvcSSLMode | fzSvcDBName},
		{"postgres://prod.postgres.database.azure.com/db?sslmode=verify-full", "", "", "", "", "a,b", "", "1,2", "", "", fzPGService | fzSvcHost | fzSvcPort},
		{"dbname=x", "h1,h2", "", "1,2", "disable", "a,b", "", "", "require", "", fzPGHost | fzPGPort | fzPGSSLMode | fzPGService | fzSvcHost | fzSvcSSLMode},
		{"host=a,b,c hostaddr=10.0.0.1,10.0.0.2", "", "127.0.0.1,127.0.0.2", "", "", "", "", "", "", "", fzPGHostaddr},
		{"host=a,b port=5", "", "", "1,2", "", "", "", "", "", "", fzPGPort},
		{"host=a,b", "x", "", "1,2", "allow", "", "", "", "", "", fzPGHost | fzPGPort | fzPGSSLMode},
		{"service=svc", "x,y", "", "", "", "", "127.0.0.1", "5433", "", "", fzPGHost | fzSvcHostaddr | fzSvcPort},
		{"host='' sslmode=verify-full", "localhost,other.example.com", "", "", "", "", "", "", "", "", fzPGHost},
		{"sslrootcert=system", "", "", "", "", "", "", "", "require", "", fzPGService | fzSvcSSLMode},
		{"service='' host=h", "", "", "", "", "x", "", "", "", "", fzPGService | fzSvcHost},
	} {
		f.Add(s.dsn, s.pghost, s.pghostaddr, s.pgport, s.pgsl, s.sh, s.sa, s.sp, s.ss, s.sd, s.flags)
	}
	f.Fuzz(func(t *testing.T, in, pghost, pghostaddr, pgport, pgsslmode, svcHost, svcHostaddr, svcPort, svcSSLMode, svcDB string, flags uint16) {
		if len(in) > 1024 {
			return
		}
		noPGEnv(t)
		envVals := []struct {
			bit      uint16
			env, key string
			val      string
			svcBit   uint16
			svcKey   string
			svcVal   string
		}{
			{fzPGHost, "PGHOST", "host", pghost, fzSvcHost, "host", svcHost},
			{fzPGHostaddr, "PGHOSTADDR", "hostaddr", pghostaddr, fzSvcHostaddr, "hostaddr", svcHostaddr},
			{fzPGPort, "PGPORT", "port", pgport, fzSvcPort, "port", svcPort},
			{fzPGSSLMode, "PGSSLMODE", "sslmode", pgsslmode, fzSvcSSLMode, "sslmode", svcSSLMode},
			{0, "", "", "", fzSvcDBName, "dbname", svcDB},
		}
		var envKV, svcKV, file strings.Builder
		file.WriteString("[svc]\n")
		svcKeys := map[string]bool{}
		for _, e := range envVals {
			if e.bit != 0 && flags&e.bit != 0 {
				if strings.IndexByte(e.val, 0) >= 0 || !utf8.ValidString(e.val) {
					return // the reference's key=value string can't hold it
				}
				t.Setenv(e.env, e.val)
				envKV.WriteString(e.key + "=" + QuoteValue(e.val) + " ")
			}
			if flags&e.svcBit != 0 {
				if strings.ContainsAny(e.svcVal, "\r\n") || !utf8.ValidString(e.svcVal) {
					return // a line of its own, and the reference's string can hold it
				}
				file.WriteString(e.svcKey + "=" + e.svcVal + "\n")
				svcKV.WriteString(e.svcKey + "=" + QuoteValue(strings.TrimSpace(e.svcVal)) + " ")
				svcKeys[e.svcKey] = true
			}
		}
		if flags&fzPGService != 0 {
			t.Setenv("PGSERVICE", "svc")
			envKV.WriteString("service=svc ")
		}
		if err := os.WriteFile(svcFile, []byte(file.String()), 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("PGSERVICEFILE", svcFile)

		got, err := Parse(in)

		// The reference, in an environment without PG* variables and with a
		// service file whose entry "svc" is empty.
		dsnKV := in
		if strings.HasPrefix(in, "postgres://") || strings.HasPrefix(in, "postgresql://") {
			//lint:ignore SA1019 the reference needs pq's own URL conversion.
			kv, uerr := pq.ParseURL(in)
			if uerr != nil {
				if err == nil {
					t.Fatalf("Parse accepts %q, which pq's URL conversion refuses: %v", in, uerr)
				}
				return
			}
			dsnKV = kv
		}
		for _, e := range envVals {
			if e.env != "" {
				os.Unsetenv(e.env)
			}
		}
		os.Unsetenv("PGSERVICE")
		os.Setenv("PGSERVICEFILE", emptyFile)
		named, nerr := newConfig(envKV.String() + dsnKV)
		ref, want := pq.Config{}, nerr
		if nerr == nil {
			s := envKV.String() + dsnKV
			if named.Service == "svc" {
				s = envKV.String() + svcKV.String() + dsnKV
			}
			ref, want = newConfig(s)
		}
		dsnSets := func(key string) (bool, bool) {
			a, errA := newConfig(key + "=" + probeValue(key, 0) + " " + dsnKV)
			b, errB := newConfig(key + "=" + probeValue(key, 1) + " " + dsnKV)
			if errA != nil || errB != nil {
				return false, false
			}
			return ConfigDiff(a, b) == "", true
		}

		if err != nil {
			var ce *ConflictError
			if !errors.As(err, &ce) {
				return // refused for another reason: nothing dialed
			}
			svcUsed := nerr == nil && named.Service == "svc"
			if strings.HasPrefix(ce.Source, "PG") && strings.Contains(ce.Source, "comma list") {
				env, _, _ := strings.Cut(ce.Source, " ")
				val := ""
				for _, e := range envVals {
					if e.env == env && flags&e.bit != 0 {
						val = e.val
					}
				}
				if !strings.Contains(val, ",") {
					t.Fatalf("%q: %v, but %s holds no list (%q)", in, err, env, val)
				}
				// (When the reference itself fails, it cannot tell whether the
				// service was used; refusing is then what libpq's order gives too.)
				if inDSN, known := dsnSets(ce.Key); known && !inDSN && nerr == nil && !(svcUsed && svcKeys[ce.Key]) {
					t.Fatalf("%q: %v, but neither the DSN nor the service gives %s", in, err, ce.Key)
				}
				return
			}
			if !svcUsed || !svcKeys[ce.Key] {
				t.Fatalf("%q: %v, but the service entry used does not give %s (keys %v, service %q)", in, err, ce.Key, svcKeys, named.Service)
			}
			if inDSN, known := dsnSets(ce.Key); known && !inDSN {
				t.Fatalf("%q: %v, but the DSN does not give %s", in, err, ce.Key)
			}
			return
		}
		if want != nil {
			t.Fatalf("Parse(%q) accepts what libpq's precedence refuses (%v): dials %q sslmode %q", in, want, hosts(got.Config), got.Config.SSLMode)
		}
		for k := range ref.Runtime {
			if strings.HasPrefix(strings.ToLower(k), AzurePrefix) {
				delete(ref.Runtime, k)
			}
		}
		if d := ConfigDiff(got.Config, ref); d != "" {
			t.Fatalf("Parse(%q) differs from libpq's precedence in %s:\n dials %q sslmode %q\n  want %q sslmode %q",
				in, d, hosts(got.Config), got.Config.SSLMode, hosts(ref), ref.SSLMode)
		}
	})
}

// probeValue is one of two different valid values for key: prefixed to a
// DSN, the results differ exactly when the DSN does not give key itself.
func probeValue(key string, i int) string {
	vals := map[string][2]string{
		"host":     {"probe-a.invalid", "probe-b.invalid"},
		"hostaddr": {"192.0.2.1", "192.0.2.2"},
		"port":     {"1", "2"},
		"sslmode":  {"require", "verify-full"},
		"dbname":   {"probe-a", "probe-b"},
	}[key]
	if vals[0] == "" {
		return [2]string{"probe-a", "probe-b"}[i]
	}
	return vals[i]
}
