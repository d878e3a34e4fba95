package reliability_test

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"
	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/internal/emulator/pgfront"
)

// badTokens are what a broken or hostile credential might return.
func badTokens() map[string]string {
	b64 := base64.RawURLEncoding.EncodeToString
	return map[string]string{
		"opaque":           "not-a-jwt-at-all",
		"oversized_1MB":    strings.Repeat("A", 1<<20),
		"oversized_jwt":    b64([]byte(`{"alg":"RS256"}`)) + "." + b64([]byte(`{"x":"`+strings.Repeat("y", 1<<20)+`"}`)) + ".sig",
		"three_garbage":    "a.b.c",
		"bad_base64":       "x.!!!.y",
		"payload_not_json": b64([]byte(`{"alg":"RS256"}`)) + "." + b64([]byte("not json")) + ".c2ln",
		"payload_array":    b64([]byte(`{"alg":"RS256"}`)) + "." + b64([]byte(`[1,2]`)) + ".c2ln",
		"wrong_claim_type": b64([]byte(`{"alg":"RS256"}`)) + "." + b64([]byte(`{"upn":42,"exp":"soon"}`)) + ".c2ln",
		"alg_none":         b64([]byte(`{"alg":"none"}`)) + "." + b64([]byte(`{"oid":"x"}`)) + ".",
		"nul_bytes":        "eyJ\x00.\x00.\x00",
	}
}

// TestBadTokens: malformed, oversized and non-JWT tokens from a credential
// give clear errors from Connect, never a panic: without a user,
// driver.ErrNoUser (the token can't name one); with a user, the server's
// refusal (the emulator's invalid-format message), as a *driver.LoginError
// wrapping *pq.Error. An empty token is refused by the cache itself.
func TestBadTokens(t *testing.T) {
	t.Parallel()
	env := startEnv(t, 0)
	p := newIdentity(t, env, "id-bad")
	for name, tok := range badTokens() {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			// No user: the name can't come from this token.
			c, err := driver.NewConnector(env.DSN(""), driver.WithCredential(staticCred(tok)))
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Connect(ctx)
			if len(tok) > 65535 {
				// Longer than PostgreSQL takes as a password: refused before dialing.
				if !errors.Is(err, driver.ErrTokenTooLarge) {
					t.Errorf("oversized, no user: Connect = %v; want ErrTokenTooLarge", err)
				}
			} else if !errors.Is(err, driver.ErrNoUser) {
				t.Errorf("no user: Connect = %v; want ErrNoUser", err)
			}
			// With a user the server refuses it.
			c2, err := driver.NewConnector(env.DSN(p.Name), driver.WithCredential(staticCred(tok)))
			if err != nil {
				t.Fatal(err)
			}
			defer c2.Close()
			_, err = c2.Connect(ctx)
			var le *driver.LoginError
			var pe *pq.Error
			switch {
			case len(tok) > 65535:
				if !errors.Is(err, driver.ErrTokenTooLarge) {
					t.Errorf("oversized: Connect = %v; want ErrTokenTooLarge", err)
				}
				for _, pw := range env.Front.Passwords() {
					if pw == tok {
						t.Error("the oversized token was sent")
					}
				}
			case !errors.As(err, &le) || !errors.As(err, &pe):
				t.Errorf("with user: Connect = %v; want a LoginError wrapping *pq.Error", err)
			case pe.Message != pgfront.MsgInvalidFormat && pe.Message != pgfront.MsgValidationFailed:
				t.Errorf("with user: server said %q; want the invalid-format (or generic validation) refusal", pe.Message)
			}
			if err != nil && len(err.Error()) > 2000 {
				t.Errorf("error message is %d bytes long: it quotes the token?", len(err.Error()))
			}
		})
	}
	t.Run("empty", func(t *testing.T) {
		c, err := driver.NewConnector(env.DSN(p.Name), driver.WithCredential(staticCred("")))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.Connect(context.Background())
		if err == nil || !strings.Contains(err.Error(), "empty token") {
			t.Errorf("Connect = %v; want an empty-token error", err)
		}
		if n := len(env.Front.Passwords()); n != 0 && env.Front.Passwords()[n-1] == "" {
			t.Error("an empty password was sent")
		}
	})
}
