package pgtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// socketPathLimit is the usable length of a unix socket path (sun_path is 108
// bytes on Linux, 104 on BSDs); the server's socket file name is appended to
// SocketDir, so SocketDir must stay well below it.
const socketPathLimit = 100

// socketFileSuffix is the longest name the server gives its socket file.
const socketFileSuffix = "/.s.PGSQL.65535"

// tempDirPattern is the os.MkdirTemp pattern of a cluster's directory.
const tempDirPattern = "pgentra-pg-"

// serverConf returns the postgresql.conf lines Start appends to initdb's file
// (later lines win). Statement text is never logged on error
// (log_min_error_statement=panic) because CREATE/ALTER ROLE statements carry
// passwords and Start quotes the log in errors.
func serverConf(port int, socketDir string, maxConns int) string {
	var b strings.Builder
	b.WriteString("\n# --- pgentra pgtest settings ---\n")
	set := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, v) }
	set("listen_addresses", confQuote("127.0.0.1"))
	set("port", fmt.Sprint(port))
	set("unix_socket_directories", confQuote(socketDir))
	set("fsync", "off")
	set("synchronous_commit", "off")
	set("full_page_writes", "off")
	set("max_connections", fmt.Sprint(maxConns))
	set("password_encryption", confQuote("scram-sha-256"))
	set("log_min_error_statement", "panic")
	set("logging_collector", "off")
	return b.String()
}

// hbaConf is the whole pg_hba.conf: trust on the unix socket (administration),
// cleartext password over TCP so that a test can prove which password (token)
// a client sent.
const hbaConf = `# pgentra pgtest: socket = trust (admin), TCP = password required
local all all trust
host  all all 127.0.0.1/32 password
host  all all ::1/128 password
`

// confQuote quotes a postgresql.conf string value.
func confQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// dsnQuote quotes a key=value DSN value when needed (empty, spaces, quotes or
// backslashes), following libpq's conninfo rules that pq implements.
func dsnQuote(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r'\\") {
		return v
	}
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`)
	return "'" + r.Replace(v) + "'"
}

// usableBase reports whether clusters may live under base: the socket path
// must fit, must not need quoting in unix_socket_directories, and when the
// server runs as another user (root case) every ancestor must be searchable
// by others.
func usableBase(base string, otherUser bool) error {
	probe := filepath.Join(base, tempDirPattern+"0123456789") + socketFileSuffix
	if len(probe) >= socketPathLimit {
		return fmt.Errorf("%s is too long for a unix socket path", base)
	}
	if strings.ContainsAny(base, ",'\" \t\n\\") {
		return fmt.Errorf("%s contains characters unix_socket_directories cannot take", base)
	}
	if !otherUser {
		return nil
	}
	for dir := base; ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is not searchable by the %s user", dir, osUser)
		}
		if parent := filepath.Dir(dir); parent == dir {
			return nil
		}
	}
}

// chooseBase picks the parent of a cluster's temp dir: os.TempDir() when
// usable, else /tmp. It returns a note for the progress log when it falls back.
func chooseBase(otherUser bool) (base, note string) {
	base = os.TempDir()
	if abs, err := filepath.Abs(base); err == nil {
		base = abs
	}
	err := usableBase(base, otherUser)
	if err == nil {
		return base, ""
	}
	return "/tmp", fmt.Sprintf("using /tmp instead of %s: %v", base, err)
}
