package pgtest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrNoPostgres is returned (wrapped) by Start when the PostgreSQL server
// binaries (initdb, pg_ctl) cannot be found, or when the process is root and
// there is no way to run them as the "postgres" OS user. Lazy.Get treats it as
// "PostgreSQL unavailable": a skip outside CI, a failure with CI=true.
var ErrNoPostgres = errors.New("PostgreSQL server binaries not available")

// binaries are the absolute paths of the server programs Start runs.
type binaries struct {
	initdb string
	pgCtl  string
}

// finder abstracts the file system and PATH so the lookup order can be unit
// tested without PostgreSQL installed.
type finder struct {
	// lookPath resolves a program name on PATH (exec.LookPath).
	lookPath func(name string) (string, error)
	// pgConfigBindir returns the output of `pg_config --bindir`.
	pgConfigBindir func() (string, error)
	// glob expands a file pattern (filepath.Glob).
	glob func(pattern string) ([]string, error)
	// isExec reports whether path is an executable regular file.
	isExec func(path string) bool
}

// globPatterns are the well-known per-version install dirs: Debian/Ubuntu
// (/usr/lib/postgresql/15/bin) and PGDG RPMs (/usr/pgsql-15/bin).
var globPatterns = []string{"/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin"}

// osFinder is the finder backed by the real system.
func osFinder() finder {
	return finder{
		lookPath: exec.LookPath,
		pgConfigBindir: func() (string, error) {
			p, err := exec.LookPath("pg_config")
			if err != nil {
				return "", err
			}
			out, err := exec.Command(p, "--bindir").Output()
			if err != nil {
				return "", fmt.Errorf("%s --bindir: %w", p, err)
			}
			return strings.TrimSpace(string(out)), nil
		},
		glob: filepath.Glob,
		isExec: func(path string) bool {
			fi, err := os.Stat(path)
			return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
		},
	}
}

// find locates initdb and pg_ctl: both on PATH, else in `pg_config --bindir`,
// else in the newest well-known versioned install dir. The two programs always
// come from the same source so their versions match.
func (f finder) find() (binaries, error) {
	var tried []string

	initdb, err1 := f.lookPath("initdb")
	pgCtl, err2 := f.lookPath("pg_ctl")
	if err1 == nil && err2 == nil {
		return binaries{initdb: initdb, pgCtl: pgCtl}, nil
	}
	tried = append(tried, "PATH")

	if dir, err := f.pgConfigBindir(); err == nil && dir != "" {
		if b, ok := f.inDir(dir); ok {
			return b, nil
		}
		tried = append(tried, "pg_config --bindir ("+dir+")")
	} else {
		tried = append(tried, "pg_config --bindir (no pg_config)")
	}

	var dirs []string
	for _, pat := range globPatterns {
		m, err := f.glob(pat)
		if err == nil {
			dirs = append(dirs, m...)
		}
		tried = append(tried, pat)
	}
	sortNewestFirst(dirs)
	for _, dir := range dirs {
		if b, ok := f.inDir(dir); ok {
			return b, nil
		}
	}
	return binaries{}, fmt.Errorf("pgentra: pgtest: %w: initdb and pg_ctl not found (looked in %s); install the PostgreSQL server package",
		ErrNoPostgres, strings.Join(tried, ", "))
}

// inDir returns dir's initdb and pg_ctl when both are executable.
func (f finder) inDir(dir string) (binaries, bool) {
	b := binaries{initdb: filepath.Join(dir, "initdb"), pgCtl: filepath.Join(dir, "pg_ctl")}
	return b, f.isExec(b.initdb) && f.isExec(b.pgCtl)
}

// sortNewestFirst orders versioned install dirs by the PostgreSQL version in
// their path, newest first (so 15 beats 9.6, which a string sort gets wrong).
func sortNewestFirst(dirs []string) {
	sort.SliceStable(dirs, func(i, j int) bool {
		return versionLess(dirVersion(dirs[j]), dirVersion(dirs[i]))
	})
}

// dirVersion extracts the numeric version parts from a path such as
// /usr/lib/postgresql/9.6/bin or /usr/pgsql-15/bin; nil when there is none.
func dirVersion(dir string) []int {
	for _, elem := range strings.Split(filepath.ToSlash(dir), "/") {
		elem = strings.TrimPrefix(elem, "pgsql-")
		var parts []int
		for _, p := range strings.Split(elem, ".") {
			n, err := strconv.Atoi(p)
			if err != nil {
				parts = nil
				break
			}
			parts = append(parts, n)
		}
		if len(parts) > 0 {
			return parts
		}
	}
	return nil
}

// versionLess compares dotted versions numerically; a missing part is lower.
func versionLess(a, b []int) bool {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return len(a) < len(b)
}
