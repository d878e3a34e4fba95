package driver

import (
	"errors"
	"fmt"
	"strings"

	"github.com/pgentra/pgentra/token"
)

// ErrInvalidConfig is matched (errors.Is) by every error that reports a bad
// connection string or option, so callers can tell configuration mistakes
// from connection failures.
var ErrInvalidConfig = errors.New("pgentra: invalid configuration")

// ErrConflictingOptions is wrapped by the error NewConnector returns when two
// options contradict each other, such as WithClientOptions with
// WithCredential: one of them would be ignored. The message names both. It
// matches ErrInvalidConfig too.
var ErrConflictingOptions = fmt.Errorf("%w: conflicting options", ErrInvalidConfig)

// ErrNoUser is returned when the DSN names no user and none can be derived
// from the access token (service principals carry no name).
var ErrNoUser = errors.New("pgentra: no database user")

// ErrTokenTooLarge is returned when a credential hands out a token longer
// than token.MaxTokenSize, PostgreSQL's limit on a password
// (PG_MAX_AUTH_TOKEN_LENGTH, 65535 bytes): the server would drop the
// connection without saying why.
var ErrTokenTooLarge = errors.New("pgentra: access token too large for a PostgreSQL password")

// maxPasswordLen is PostgreSQL's PG_MAX_AUTH_TOKEN_LENGTH, the limit the
// token package uses too.
const maxPasswordLen = token.MaxTokenSize

// ConfigError names the key at fault, what was wrong and what is accepted. It
// never carries the value of a secret key.
type ConfigError struct {
	Key    string // the DSN key or option, e.g. "azure_credential"
	Value  string // the offending value; empty for secrets
	Reason string // what is wrong and what would be accepted
}

// Error says which key is wrong and what would be accepted.
func (e *ConfigError) Error() string {
	if e.Value != "" {
		return fmt.Sprintf("pgentra: %s=%q: %s", e.Key, e.Value, e.Reason)
	}
	return fmt.Sprintf("pgentra: %s: %s", e.Key, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigError) Unwrap() error { return ErrInvalidConfig }

func configErr(key, value, format string, args ...any) error {
	return &ConfigError{Key: key, Value: value, Reason: fmt.Sprintf(format, args...)}
}

// quoteList renders accepted values for an error message.
func quoteList(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = fmt.Sprintf("%q", v)
	}
	return strings.Join(q, ", ")
}
