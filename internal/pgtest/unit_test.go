package pgtest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// fakeFinder builds a finder over an in-memory set of executables.
func fakeFinder(path map[string]string, bindir string, bindirErr error, globs map[string][]string, execs ...string) finder {
	return finder{
		lookPath: func(name string) (string, error) {
			if p, ok := path[name]; ok {
				return p, nil
			}
			return "", fmt.Errorf("%s: %w", name, fs.ErrNotExist)
		},
		pgConfigBindir: func() (string, error) { return bindir, bindirErr },
		glob:           func(p string) ([]string, error) { return slices.Clone(globs[p]), nil },
		isExec:         func(p string) bool { return slices.Contains(execs, p) },
	}
}

func TestFind(t *testing.T) {
	debian := []string{"/usr/lib/postgresql/9.6/bin", "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/13/bin"}
	tests := []struct {
		name       string
		f          finder
		wantInitdb string
		wantCtl    string
		wantErr    bool
	}{
		{
			name:       "both on PATH win",
			f:          fakeFinder(map[string]string{"initdb": "/a/initdb", "pg_ctl": "/a/pg_ctl"}, "/b", nil, nil, "/b/initdb", "/b/pg_ctl"),
			wantInitdb: "/a/initdb", wantCtl: "/a/pg_ctl",
		},
		{
			name:       "only pg_ctl on PATH falls through to pg_config",
			f:          fakeFinder(map[string]string{"pg_ctl": "/a/pg_ctl"}, "/b", nil, nil, "/b/initdb", "/b/pg_ctl"),
			wantInitdb: "/b/initdb", wantCtl: "/b/pg_ctl",
		},
		{
			name: "pg_config bindir without initdb falls through to newest versioned dir",
			f: fakeFinder(nil, "/b", nil, map[string][]string{"/usr/lib/postgresql/*/bin": debian},
				"/b/pg_ctl", "/usr/lib/postgresql/9.6/bin/initdb", "/usr/lib/postgresql/9.6/bin/pg_ctl",
				"/usr/lib/postgresql/15/bin/initdb", "/usr/lib/postgresql/15/bin/pg_ctl",
				"/usr/lib/postgresql/13/bin/initdb", "/usr/lib/postgresql/13/bin/pg_ctl"),
			wantInitdb: "/usr/lib/postgresql/15/bin/initdb", wantCtl: "/usr/lib/postgresql/15/bin/pg_ctl",
		},
		{
			name: "no pg_config; newest complete dir is used",
			f: fakeFinder(nil, "", errors.New("no pg_config"), map[string][]string{"/usr/lib/postgresql/*/bin": debian},
				"/usr/lib/postgresql/9.6/bin/initdb", "/usr/lib/postgresql/9.6/bin/pg_ctl",
				"/usr/lib/postgresql/15/bin/pg_ctl", // 15 lacks initdb (client-only)
				"/usr/lib/postgresql/13/bin/initdb", "/usr/lib/postgresql/13/bin/pg_ctl"),
			wantInitdb: "/usr/lib/postgresql/13/bin/initdb", wantCtl: "/usr/lib/postgresql/13/bin/pg_ctl",
		},
		{
			name: "PGDG layout",
			f: fakeFinder(nil, "", errors.New("no pg_config"), map[string][]string{"/usr/pgsql-*/bin": {"/usr/pgsql-12/bin", "/usr/pgsql-16/bin"}},
				"/usr/pgsql-12/bin/initdb", "/usr/pgsql-12/bin/pg_ctl", "/usr/pgsql-16/bin/initdb", "/usr/pgsql-16/bin/pg_ctl"),
			wantInitdb: "/usr/pgsql-16/bin/initdb", wantCtl: "/usr/pgsql-16/bin/pg_ctl",
		},
		{
			name:    "nothing anywhere",
			f:       fakeFinder(nil, "", errors.New("no pg_config"), nil),
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := tt.f.find()
			if tt.wantErr {
				if !errors.Is(err, ErrNoPostgres) {
					t.Fatalf("err = %v, want ErrNoPostgres", err)
				}
				if !strings.Contains(err.Error(), "PATH") || !strings.Contains(err.Error(), "/usr/lib/postgresql/*/bin") {
					t.Errorf("error does not say where it looked: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.initdb != tt.wantInitdb || b.pgCtl != tt.wantCtl {
				t.Errorf("got (%s, %s), want (%s, %s)", b.initdb, b.pgCtl, tt.wantInitdb, tt.wantCtl)
			}
		})
	}
}

func TestSortNewestFirst(t *testing.T) {
	dirs := []string{"/usr/lib/postgresql/9.6/bin", "/usr/lib/postgresql/10/bin", "/x/bin", "/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/9.5/bin"}
	sortNewestFirst(dirs)
	want := []string{"/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/10/bin", "/usr/lib/postgresql/9.6/bin", "/usr/lib/postgresql/9.5/bin", "/x/bin"}
	if !slices.Equal(dirs, want) {
		t.Errorf("got %v, want %v", dirs, want)
	}
}

func TestDSNQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"postgres", "postgres"},
		{"", "''"},
		{"a b", "'a b'"},
		{`it's`, `'it\'s'`},
		{`c:\x`, `'c:\\x'`},
	}
	for _, tt := range tests {
		if got := dsnQuote(tt.in); got != tt.want {
			t.Errorf("dsnQuote(%q) = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestDSNs(t *testing.T) {
	c := &Cluster{SocketDir: "/tmp/pgentra-pg-1", Host: "127.0.0.1", Port: 5555, SuperUser: "postgres"}
	if got, want := c.AdminDSN(""), "host=/tmp/pgentra-pg-1 port=5555 user=postgres dbname=postgres sslmode=disable"; got != want {
		t.Errorf("AdminDSN = %q, want %q", got, want)
	}
	if got, want := c.TCPDSN("app@x", "my db"), "host=127.0.0.1 port=5555 user=app@x dbname='my db' sslmode=disable"; got != want {
		t.Errorf("TCPDSN = %q, want %q", got, want)
	}
	if got, want := c.Addr(), "127.0.0.1:5555"; got != want {
		t.Errorf("Addr = %q, want %q", got, want)
	}
}

func TestUsableBase(t *testing.T) {
	if err := usableBase("/tmp", true); err != nil {
		t.Errorf("/tmp: %v", err)
	}
	long := "/" + strings.Repeat("d", 90)
	if err := usableBase(long, false); err == nil {
		t.Errorf("%d-byte base accepted; the socket path would not fit", len(long))
	}
	if err := usableBase("/tmp/a,b", false); err == nil {
		t.Error("base with a comma accepted")
	}
	private := t.TempDir()
	if err := os.Chmod(private, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := usableBase(private, true); err == nil || !strings.Contains(err.Error(), "searchable") {
		t.Errorf("base not searchable by others: err = %v, want a 'not searchable' error", err)
	}
}

func TestServerConf(t *testing.T) {
	conf := serverConf(6543, "/tmp/it's", 400)
	for _, want := range []string{
		"listen_addresses = '127.0.0.1'", "port = 6543", "unix_socket_directories = '/tmp/it''s'",
		"fsync = off", "max_connections = 400", "password_encryption = 'scram-sha-256'",
		"log_min_error_statement = panic",
	} {
		if !strings.Contains(conf, want) {
			t.Errorf("postgresql.conf lacks %q:\n%s", want, conf)
		}
	}
	if !strings.Contains(hbaConf, "host  all all 127.0.0.1/32 password") || strings.Contains(hbaConf, "host  all all 127.0.0.1/32 trust") {
		t.Errorf("pg_hba.conf must demand a password over TCP:\n%s", hbaConf)
	}
}

func TestVerdict(t *testing.T) {
	missing := fmt.Errorf("wrapped: %w", ErrNoPostgres)
	other := errors.New("initdb: disk full")
	tests := []struct {
		name     string
		err      error
		ci       bool
		wantSkip bool
	}{
		{"missing outside CI skips", missing, false, true},
		{"missing in CI fails", missing, true, false},
		{"other failure outside CI fails", other, false, false},
		{"other failure in CI fails", other, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			skip, msg := verdict(tt.err, tt.ci)
			if skip != tt.wantSkip {
				t.Errorf("skip = %v, want %v (%s)", skip, tt.wantSkip, msg)
			}
			if !strings.Contains(msg, tt.err.Error()) {
				t.Errorf("message %q does not carry the cause", msg)
			}
		})
	}
}

func TestChildEnvDropsPG(t *testing.T) {
	got := childEnv([]string{"PATH=/bin", "PGDATA=/x", "PGPORT=1", "HOME=/root"})
	if want := []string{"PATH=/bin", "HOME=/root"}; !slices.Equal(got, want) {
		t.Errorf("childEnv = %v, want %v", got, want)
	}
}

func TestTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	var b strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&b, "line %d\n", i)
	}
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	got := tail(p, 3)
	if want := "line 4997\nline 4998\nline 4999"; got != want {
		t.Errorf("tail = %q, want %q", got, want)
	}
	if got := tail(filepath.Join(t.TempDir(), "none"), 3); !strings.Contains(got, "no server log") {
		t.Errorf("tail of missing file = %q", got)
	}
}
