package token

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// MaxRetryAfter caps the wait a throttled identity endpoint can impose with Retry-After:
// a longer value (or a far-future date) is taken as this long.
const MaxRetryAfter = 10 * time.Minute

// ThrottledError is the error of a fetch that an identity endpoint (IMDS, App Service,
// Entra's token endpoint) refused with 429 Too Many Requests or 503 Service Unavailable
// and a Retry-After header. azcore's retries give up at once on a Retry-After beyond
// their cap (25 s for managed identity), so the cache honours it: it makes no request
// to the credential for at least RetryAfter (spread by up to a quarter more, so that
// processes throttled together do not return together), serving a still-valid token
// meanwhile. Callers get it through errors.As; it wraps the credential's error.
type ThrottledError struct {
	// RetryAfter is the wait the endpoint asked for, at most [MaxRetryAfter].
	RetryAfter time.Duration
	// Err is the fetch's error, with the credential's error (and its HTTP response)
	// inside.
	Err error
}

// Error returns Err's message followed by the wait the endpoint asked for.
func (e *ThrottledError) Error() string {
	return fmt.Sprintf("%s (throttled by the identity endpoint: Retry-After %s)", e.Err, e.RetryAfter)
}

// Unwrap returns Err.
func (e *ThrottledError) Unwrap() error { return e.Err }

// throttled wraps err in a ThrottledError when it carries a throttling response with a
// Retry-After header.
func throttled(err error, now time.Time) (*ThrottledError, bool) {
	var te *ThrottledError
	if errors.As(err, &te) {
		return nil, false // already annotated
	}
	resp := responseOf(err)
	if resp == nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
		return nil, false
	}
	d := parseRetryAfter(resp.Header, now)
	if d <= 0 {
		return nil, false
	}
	return &ThrottledError{RetryAfter: min(d, MaxRetryAfter), Err: err}, true
}

// responseOf finds the HTTP response behind err: azcore's ResponseError (returned by
// azcore pipelines), or azidentity's AuthenticationFailedError (the managed identity,
// client secret, certificate and assertion credentials).
func responseOf(err error) *http.Response {
	var re *azcore.ResponseError
	if errors.As(err, &re) && re.RawResponse != nil {
		return re.RawResponse
	}
	var af *azidentity.AuthenticationFailedError
	if errors.As(err, &af) && af.RawResponse != nil {
		return af.RawResponse
	}
	return nil
}

// parseRetryAfter reads the wait from retry-after-ms, x-ms-retry-after-ms (milliseconds)
// or Retry-After (seconds, or an HTTP date), in azcore's order of preference.
func parseRetryAfter(h http.Header, now time.Time) time.Duration {
	for _, k := range []string{"retry-after-ms", "x-ms-retry-after-ms"} {
		if v, err := strconv.ParseInt(strings.TrimSpace(h.Get(k)), 10, 64); err == nil && v > 0 {
			return time.Duration(min(v, int64(MaxRetryAfter/time.Millisecond))) * time.Millisecond
		}
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, int64(MaxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now)
	}
	return 0
}
