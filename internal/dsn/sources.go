package dsn

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"reflect"
	"strings"

	"github.com/lib/pq"
	"github.com/pgentra/pgentra/internal/pqinternal"
)

// ErrConflict reports a key that the connection string gives and that a
// service file or a PG* variable would replace or extend in pq's reading.
// libpq lets the string win over a service file and the environment; pq
// applies a service file after the string, and adds the rest of a comma
// list in PGHOST, PGHOSTADDR or PGPORT to the string's own list. pgentra
// refuses such a conflict (ConflictError) rather than dial elsewhere.
var ErrConflict = errors.New("a key of the connection string conflicts with its environment")

// ErrNestedService reports a service file entry that itself sets
// "service", which libpq refuses: pq would apply the entry and then report
// another service name, hiding which entry's settings it used.
var ErrNestedService = errors.New(`an entry of the service file sets "service" (nested service entries are not supported, as in libpq)`)

// ConflictError is ErrConflict for one key. Its message names the key and
// both sources, never a value.
type ConflictError struct {
	Key    string // pq's name of the key: "host", "port", "hostaddr", "sslmode", "dbname", ...
	Source string // where the other value comes from: `PGSERVICE=dev (service file "…")`, `PGHOST (a comma list)`
	Over   string // whose value it would replace or extend: "the connection string", `service "dev"`
	Reason string // what pq would do
}

// Error names the key, both sources and the fix.
func (e *ConflictError) Error() string {
	return fmt.Sprintf("%s from %s conflicts with %s in %s: %s; give %s in one place only",
		e.Key, e.Source, e.Key, e.Over, e.Reason, e.Key)
}

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// listVars are the variables whose comma lists pq adds to the string's (or
// the service file's) own list of the same key.
var listVars = []struct{ key, env string }{{"host", "PGHOST"}, {"hostaddr", "PGHOSTADDR"}, {"port", "PGPORT"}}

// pqFields lists, in pq.Config's field order, each key pq records when it is
// set (its postgres tag, else its env tag) and the variable pq reads it
// from ("" for none), as pq.Config's struct tags say.
var pqFields = func() (keys []struct{ key, env string }) {
	t := reflect.TypeFor[pq.Config]()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		env, pg := f.Tag.Get("env"), f.Tag.Get("postgres")
		if env == "-" {
			env = ""
		}
		if pg == "" || pg == "-" {
			pg = env
		}
		if pg != "" {
			keys = append(keys, struct{ key, env string }{pg, env})
		}
	}
	return keys
}()

// checkSources applies libpq's precedence to pq's result cfg, or refuses:
// a key the string gives must not come from the service file as well (pq
// would take the file's), and a comma list in PGHOST, PGHOSTADDR or PGPORT
// must not meet the same key in the string or the service file (pq would
// add its tail to theirs). Keys the string does not give may come from the
// service file or the environment, as in libpq: that is pq's result
// unchanged.
//
// Which keys the string gave is read from pq's record of set keys (one
// entry per source that gave the key) minus the environment's and the
// service entry's: pq records the names, not where they came from. Without
// the record (a pq release that renamed it) every key counts as given by
// the string, which refuses more, never less.
func checkSources(cfg pq.Config) error {
	set, recorded := pqinternal.SetKeys(cfg)
	count := map[string]int{}
	for _, k := range set {
		count[k]++
	}
	envHas := map[string]bool{}
	for _, k := range pqFields {
		if _, ok := os.LookupEnv(k.env); ok && k.env != "" {
			envHas[k.key] = true
		}
	}
	var svc map[string]string
	if cfg.Service != "" || count["service"] > 0 && cfg.ServiceFile != "" {
		sections, err := readServiceFile(cfg.ServiceFile)
		if err != nil && cfg.Service != "" {
			return fmt.Errorf("service file %q: read after pq: %w", cfg.ServiceFile, err)
		}
		if nestedService(sections, cfg.Service, count["service"], envHas["service"], recorded) {
			return fmt.Errorf("%w: service file %q", ErrNestedService, cfg.ServiceFile)
		}
		if cfg.Service != "" {
			var ok bool
			if svc, ok = sections[cfg.Service]; !ok {
				return fmt.Errorf("service %q is no longer in service file %q", cfg.Service, cfg.ServiceFile)
			}
		}
	}
	inString := func(k string) bool {
		n := count[k]
		if envHas[k] {
			n--
		}
		if has(svc, k) {
			n--
		}
		return !recorded || n > 0
	}
	var svcSource, svcName string
	if cfg.Service != "" {
		svcName = fmt.Sprintf("service %q", cfg.Service)
		svcSource = fmt.Sprintf("service %q (service file %q)", cfg.Service, cfg.ServiceFile)
		if v, ok := os.LookupEnv("PGSERVICE"); ok && v == cfg.Service && !inString("service") {
			svcSource = fmt.Sprintf("PGSERVICE=%s (service file %q)", cfg.Service, cfg.ServiceFile)
		}
	}
	for _, k := range pqFields {
		// A password in the string is refused as such (Parsed.PasswordInDSN);
		// pgentra replaces any password with the token.
		if has(svc, k.key) && k.key != "password" && inString(k.key) {
			return &ConflictError{Key: k.key, Source: svcSource, Over: "the connection string",
				Reason: "pq applies a service file after the string, so the service's value would replace the string's (libpq keeps the string's)"}
		}
	}
	for _, l := range listVars {
		v, ok := os.LookupEnv(l.env)
		if !ok || !strings.Contains(v, ",") {
			continue
		}
		reason := fmt.Sprintf("pq adds the rest of %s's list to the %s list it is given", l.env, l.key)
		switch {
		case inString(l.key):
			return &ConflictError{Key: l.key, Source: l.env + " (a comma list)", Over: "the connection string", Reason: reason}
		case has(svc, l.key):
			return &ConflictError{Key: l.key, Source: l.env + " (a comma list)", Over: svcName, Reason: reason}
		}
	}
	return nil
}

// nestedService reports whether the service entry pq applied set
// "service" itself: then cfg.Service names another entry than the one
// applied. pq records "service" once per source that set it (count): the
// environment (PGSERVICE, envSet), the string and the entry. Beyond the
// environment's, two records are the string's and the entry's; one is the
// string's unless PGSERVICE named the entry, which is then refused if it
// sets "service". Without pq's record, the entries named by cfg.Service and
// PGSERVICE are checked.
func nestedService(sections map[string]map[string]string, service string, count int, envSet, recorded bool) bool {
	envEntry := has(sections[os.Getenv("PGSERVICE")], "service") && envSet
	if !recorded {
		return envEntry || has(sections[service], "service")
	}
	beyond := count
	if envSet {
		beyond--
	}
	return beyond >= 2 || beyond == 1 && envEntry
}

func has(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}

// envListHint explains a pq error that a comma list in PGHOST, PGHOSTADDR
// or PGPORT may have caused (pq adds it to the string's list and may then
// find the counts of hosts, addresses and ports mismatched).
func envListHint() string {
	var lists []string
	for _, l := range listVars {
		if strings.Contains(os.Getenv(l.env), ",") {
			lists = append(lists, l.env)
		}
	}
	if len(lists) == 0 {
		return ""
	}
	return fmt.Sprintf(" (%s holds a comma list, which pq adds to the connection string's own: unset it or give the whole list in one place)", strings.Join(lists, " and "))
}

// readServiceFile reads a service file as pq's internal pgservice does —
// lines trimmed, "#" comments, [name] headers, key=value with both sides
// trimmed, the first section of a name the one used — and returns each
// section's keys, and whether any section sets "service". It decides
// nothing that is dialed: the values are pq's; it only attributes keys to
// the file. Lines that are not key=value are skipped (pq refuses them in
// the entry it uses).
func readServiceFile(path string) (map[string]map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sections := map[string]map[string]string{}
	var cur map[string]string // nil outside a section, or in a repeated one
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		if line[0] == '[' && line[len(line)-1] == ']' {
			name := strings.TrimSpace(line[1 : len(line)-1])
			cur = nil
			if _, seen := sections[name]; !seen {
				cur = map[string]string{}
				sections[name] = cur
			}
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if k = strings.TrimSpace(k); ok && k != "" && cur != nil {
			cur[k] = strings.TrimSpace(v)
		}
	}
	return sections, sc.Err()
}
