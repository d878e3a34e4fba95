package token

import (
	"errors"
	"strings"
	"testing"
)

// claimNames are the claims ParseClaims reads; a type error names one of them.
var claimNames = []string{"aud", "iss", "tid", "oid", "appid", "azp", "idtyp", "upn",
	"preferred_username", "unique_name", "xms_mirid", "iat", "nbf", "exp"}

// fixedMessages are all messages ParseClaims can return.
func fixedMessages() map[string]bool {
	m := map[string]bool{}
	for _, err := range []error{errTooLarge, errNotJWT, errBase64, errJSON} {
		m[err.Error()] = true
	}
	for _, n := range claimNames {
		m[errClaimTypes.Error()+" ("+n+")"] = true
	}
	return m
}

// FuzzParseClaims checks that ParseClaims never panics on any input and that its errors
// never contain the token or a part of it: every error must be one of the fixed
// messages, and no input (part) of 8 bytes or more may appear in it unless it is a piece
// of that fixed text itself. Its seed corpus is in testdata/fuzz/FuzzParseClaims.
func FuzzParseClaims(f *testing.F) {
	for _, p := range []string{claimsUser, claimsMIDatabase, claimsMIManagementUser, claimsServicePrincipal} {
		f.Add(jwt(p))
	}
	f.Add("a.b.c")
	f.Add("")
	known := fixedMessages()
	var fixedText strings.Builder
	for msg := range known {
		fixedText.WriteString(msg + "\x00")
	}
	f.Fuzz(func(t *testing.T, token string) {
		c, err := ParseClaims(token)
		if err == nil {
			_ = c.PrincipalName()
			_ = c.String()
			return
		}
		msg := err.Error()
		if !errors.Is(err, ErrMalformedToken) || !known[msg] {
			t.Fatalf("unexpected error %q: want a fixed ErrMalformedToken message", msg)
		}
		const minLeak = 8
		for _, s := range append(strings.Split(token, "."), token) {
			if len(s) >= minLeak && strings.Contains(msg, s) && !strings.Contains(fixedText.String(), s) {
				t.Fatalf("error %q contains input %q", msg, s)
			}
		}
	})
}
