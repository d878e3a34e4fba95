package token

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxTokenSize is the largest access token pgentra uses: PostgreSQL's limit on a
// password (PG_MAX_AUTH_TOKEN_LENGTH, 65535 bytes), since a longer token could not
// log in anyway. [ParseClaims] refuses longer input, which bounds what hostile input
// costs, and the driver refuses a longer token before dialing. Entra access tokens
// are a few KiB.
const MaxTokenSize = 65535

// ErrMalformedToken is wrapped by every [ParseClaims] error. The messages name only what
// is wrong, never any part of the token.
var ErrMalformedToken = errors.New("pgentra: malformed access token")

var (
	errTooLarge   = fmt.Errorf("%w: longer than %d bytes", ErrMalformedToken, MaxTokenSize)
	errNotJWT     = fmt.Errorf("%w: not a JWT (want 3 dot-separated parts)", ErrMalformedToken)
	errBase64     = fmt.Errorf("%w: payload is not base64url", ErrMalformedToken)
	errJSON       = fmt.Errorf("%w: payload is not a JSON object", ErrMalformedToken)
	errClaimTypes = fmt.Errorf("%w: claim has an unexpected type", ErrMalformedToken)
)

// Claims are the access-token claims pgentra uses, decoded WITHOUT verifying the token's
// signature: they are untrusted hints, good for deriving a role name and for error
// messages, never for authorization. The server verifies the token.
type Claims struct {
	Audience          string // aud (the first one when it is an array)
	Issuer            string // iss
	TenantID          string // tid
	ObjectID          string // oid
	AppID             string // appid (v1 tokens), else azp (v2 tokens)
	IdentityType      string // idtyp: "user" or "app"
	UPN               string // upn
	PreferredUsername string // preferred_username
	UniqueName        string // unique_name
	MIResourceID      string // xms_mirid: a managed identity's Azure resource ID
	IssuedAt          time.Time
	NotBefore         time.Time
	ExpiresAt         time.Time
}

// ParseClaims decodes the payload of a JWT access token without verifying it. It fails,
// with an error wrapping [ErrMalformedToken] that contains no part of the token, when the
// token is larger than [MaxTokenSize], has not exactly three dot-separated parts, its
// payload is not base64url-encoded JSON object, or a claim it reads has the wrong type
// (strings; aud string or array of strings; iat/nbf/exp numbers). Unknown claims are
// ignored; missing ones stay zero.
func ParseClaims(accessToken string) (Claims, error) {
	if len(accessToken) > MaxTokenSize {
		return Claims{}, errTooLarge
	}
	first := strings.IndexByte(accessToken, '.')
	last := strings.LastIndexByte(accessToken, '.')
	if first < 0 || first == last || strings.IndexByte(accessToken[first+1:last], '.') >= 0 {
		return Claims{}, errNotJWT
	}
	payload := strings.TrimRight(accessToken[first+1:last], "=") // tolerate padding
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return Claims{}, errBase64
	}
	raw = bytes.TrimSpace(raw)
	var m map[string]json.RawMessage // exact-case keys, unlike decoding into a struct
	if len(raw) == 0 || raw[0] != '{' || json.Unmarshal(raw, &m) != nil {
		return Claims{}, errJSON
	}
	d := claimDecoder{m: m}
	c := Claims{
		Audience:          d.audience(),
		Issuer:            d.str("iss"),
		TenantID:          d.str("tid"),
		ObjectID:          d.str("oid"),
		AppID:             d.str("appid"),
		IdentityType:      d.str("idtyp"),
		UPN:               d.str("upn"),
		PreferredUsername: d.str("preferred_username"),
		UniqueName:        d.str("unique_name"),
		MIResourceID:      d.str("xms_mirid"),
		IssuedAt:          d.numericDate("iat"),
		NotBefore:         d.numericDate("nbf"),
		ExpiresAt:         d.numericDate("exp"),
	}
	if c.AppID == "" {
		c.AppID = d.str("azp")
	}
	if d.bad != "" {
		return Claims{}, fmt.Errorf("%w (%s)", errClaimTypes, d.bad)
	}
	return c, nil
}

// claimDecoder reads single claims and remembers the first badly typed one. bad only
// ever holds a claim name from this file, never token content.
type claimDecoder struct {
	m   map[string]json.RawMessage
	bad string
}

func (d *claimDecoder) fail(name string) {
	if d.bad == "" {
		d.bad = name
	}
}

func (d *claimDecoder) str(name string) string {
	v, ok := d.m[name]
	if !ok || string(v) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(v, &s) != nil {
		d.fail(name)
		return ""
	}
	return s
}

// audience accepts aud as a string or an array of strings (RFC 7519 §4.1.3) and returns
// the first.
func (d *claimDecoder) audience() string {
	v, ok := d.m["aud"]
	if !ok || string(v) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	var a []string
	if json.Unmarshal(v, &a) != nil {
		d.fail("aud")
		return ""
	}
	if len(a) == 0 {
		return ""
	}
	return a[0]
}

// maxUnixSeconds keeps numeric dates within what time.Time handles without overflow
// (year 9999 is about 2.5e11 s).
const maxUnixSeconds = 1e12

// numericDate reads a JSON number of seconds since the epoch, possibly fractional.
func (d *claimDecoder) numericDate(name string) time.Time {
	v, ok := d.m[name]
	if !ok || string(v) == "null" {
		return time.Time{}
	}
	var f float64
	if json.Unmarshal(v, &f) != nil || math.IsNaN(f) || math.Abs(f) > maxUnixSeconds {
		d.fail(name)
		return time.Time{}
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC()
}

// PrincipalName returns the PostgreSQL role name the token's principal most likely has,
// or "" when the token does not say: the last segment of xms_mirid (a
// managed identity's resource name, e.g. "id-orders" from
// ".../userAssignedIdentities/id-orders", or the VM or app name for a system-assigned
// identity), else upn, preferred_username, unique_name. Service-principal tokens carry
// none of these; their role is the app's display name, which must be given.
func (c Claims) PrincipalName() string {
	if id := strings.TrimRight(c.MIResourceID, "/"); id != "" {
		if name := id[strings.LastIndexByte(id, '/')+1:]; name != "" {
			return name
		}
	}
	for _, s := range [...]string{c.UPN, c.PreferredUsername, c.UniqueName} {
		if s != "" {
			return s
		}
	}
	return ""
}

// String summarizes who the token is for, e.g. for error hints:
// "oid=… appid=… upn=… idtyp=user"; fields that are empty are left out. Claims hold no
// secret, but this stays short on purpose.
func (c Claims) String() string {
	var b strings.Builder
	for _, kv := range [...][2]string{
		{"oid", c.ObjectID}, {"appid", c.AppID}, {"upn", c.UPN}, {"idtyp", c.IdentityType},
	} {
		if kv[1] == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(kv[0])
		b.WriteByte('=')
		b.WriteString(quoteIfNeeded(kv[1]))
	}
	return b.String()
}

// quoteIfNeeded quotes untrusted claim values that would break a one-line log format.
func quoteIfNeeded(s string) string {
	for _, r := range s {
		if r <= ' ' || r == '"' || r == '=' || r == 0x7f || r == utf8.RuneError || !unicode.IsPrint(r) {
			return strconv.Quote(s)
		}
	}
	return s
}
