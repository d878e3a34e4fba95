package driver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/lib/pq"
	"github.com/lib/pq/pqerror"
)

// TestLoginErrorMessageShape: Error() is the cause, a one-line hint and a
// link to the troubleshooting page's section; "pgentra:" once; the full
// hint stays in Hint; never the token.
func TestLoginErrorMessageShape(t *testing.T) {
	tok := fakeJWT(miDBClaims(), 1)
	for _, tc := range []struct {
		code, msg string
		anchor    anchor
	}{
		{"28000", "The access token has expired. Please acquire a new token and retry.", anchorExpired},
		{"28000", `The access token does not have a valid audience claim. Please acquire a new token for the resource "https://ossrdbms-aad.database.windows.net".`, anchorAudience},
		{"28000", `Service principals cannot generate AAD_AUTH_TOKENTYPE_APP_USER tokens for role "app-role"`, anchorTokenType},
		{"28P01", `password authentication failed for user "app-role"`, anchorWrongUser},
		{"3D000", `database "orders" does not exist`, anchorNoDatabase},
	} {
		err := &pq.Error{Code: pqerror.Code(tc.code), Message: tc.msg}
		le := &LoginError{User: "app-role", Principal: principalOf(tok), Err: err}
		le.setHint(diagnose(err, hintInput{User: "app-role", Given: true, Scope: publicScope, Token: tok}))
		msg := le.Error()
		if len(msg) > 300 || strings.Count(msg, "pgentra:") != 1 || strings.Contains(msg, "\n") {
			t.Errorf("%s: %d characters, %d \"pgentra:\":\n%s", tc.code, len(msg), strings.Count(msg, "pgentra:"), msg)
		}
		if !strings.HasSuffix(msg, " (see "+tc.anchor.url()+")") {
			t.Errorf("%s: no link to #%s: %s", tc.code, tc.anchor, msg)
		}
		if !strings.Contains(msg, tc.msg) || strings.Contains(msg, tok) {
			t.Errorf("%s: the server's message is missing, or the token is shown: %s", tc.code, msg)
		}
		if len(le.Hint) <= len(le.summary) || strings.Contains(msg, le.Hint) {
			t.Errorf("%s: the full hint (%q) should be in Hint only, the message shows a line of it", tc.code, le.Hint)
		}
	}
}

// TestNoDatabaseHint: 3D000 names dbname/PGDATABASE and how to list the
// databases, and is not framed as a failed login.
func TestNoDatabaseHint(t *testing.T) {
	err := &pq.Error{Code: "3D000", Message: `database "orders" does not exist`}
	le := &LoginError{User: "app", Err: err}
	le.setHint(diagnose(err, hintInput{User: "app", Given: true}))
	for _, w := range []string{"dbname", "PGDATABASE", " -l", "select datname from pg_database"} {
		if !strings.Contains(le.Hint, w) {
			t.Errorf("hint lacks %q: %s", w, le.Hint)
		}
	}
	if msg := le.Error(); strings.Contains(msg, "login as") || !strings.Contains(msg, "the token was accepted") {
		t.Errorf("message frames a missing database as a failed login: %s", msg)
	}
}

// TestTokenErrorKeepsLastAnswer: a token wait ended by the caller's
// deadline names what the identity endpoint last answered, and is still
// context.DeadlineExceeded.
func TestTokenErrorKeepsLastAnswer(t *testing.T) {
	cred := &namedCredential{info: credentialInfo{what: "managed identity (system-assigned; azure_credential=managed_identity)", compute: true}, last: &lastAnswer{}}
	cred.last.p.Store(&answer{text: "HTTP 500: the identity service is restarting"})
	c := &Connector{cred: cred, credKind: credManagedIdentity}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cacheErr := fmt.Errorf("pgentra: waiting for a token for scope %q: %w", publicScope, context.Canceled)
	err := c.tokenError(ctx, cacheErr)
	var te *TokenError
	if !errors.As(err, &te) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want a *TokenError wrapping context.Canceled", err)
	}
	msg := err.Error()
	for _, w := range []string{"HTTP 500", "the identity service is restarting", "context canceled"} {
		if !strings.Contains(msg, w) {
			t.Errorf("message lacks %q: %s", w, msg)
		}
	}
	if strings.Count(msg, "pgentra:") != 1 || len(msg) > 300 {
		t.Errorf("%d characters, %d \"pgentra:\": %s", len(msg), strings.Count(msg, "pgentra:"), msg)
	}
}
