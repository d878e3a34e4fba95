package driver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
)

// answer is a recorded outcome of a failed token request.
type answer struct {
	text     string // "HTTP 400: <message>", or the transport's error ("connection refused")
	noAnswer bool   // the request got no HTTP answer
}

// lastAnswer keeps, for a credential pgentra built, what the identity
// endpoint (or Entra) last answered to a failed token request: its HTTP
// status and message, or that it did not answer. A caller whose deadline
// ends a token wait gets it in the error: azidentity retries for about
// 100 s and says nothing until it gives up. Never a token: a successful
// answer clears it, and only the error fields of a failed one are read.
type lastAnswer struct{ p atomic.Pointer[answer] }

// get is the last failed request's outcome; nil when the last request
// worked or none failed.
func (l *lastAnswer) get() *answer {
	if l == nil {
		return nil
	}
	return l.p.Load()
}

// Do is the per-retry policy that records each attempt's outcome.
func (l *lastAnswer) Do(req *policy.Request) (*http.Response, error) {
	resp, err := req.Next()
	switch {
	case err != nil:
		l.p.Store(&answer{text: lastPart(err.Error()), noAnswer: true})
	case resp.StatusCode >= 400:
		l.p.Store(&answer{text: answerOf(resp)})
	default:
		l.p.Store(nil)
	}
	return resp, err
}

// lastPart is the end of a wrapped error's text ("connection refused" of
// "dial tcp 127.0.0.1:1: connect: connection refused").
func lastPart(s string) string {
	if i := strings.LastIndex(s, ": "); i >= 0 {
		return s[i+2:]
	}
	return s
}

// answerOf says in a line what a failed token request got: the status and
// the message of the error body (IMDS' and App Service's "message", Entra's
// "error_description" up to its first line or sentence, or "error").
func answerOf(resp *http.Response) string {
	s := fmt.Sprintf("HTTP %d", resp.StatusCode)
	body, err := runtime.Payload(resp)
	if err != nil {
		return s
	}
	var m struct {
		Message     string `json:"message"`
		Description string `json:"error_description"`
		Error       any    `json:"error"`
	}
	if json.Unmarshal(body, &m) != nil {
		return s
	}
	msg := m.Message
	if msg == "" {
		msg = m.Description
		if i := strings.IndexAny(msg, "\r\n"); i >= 0 {
			msg = msg[:i]
		}
	}
	if msg == "" {
		if e, ok := m.Error.(string); ok {
			msg = e
		}
	}
	if msg != "" {
		s += ": " + shorten(strings.TrimSpace(msg), 80)
	}
	return s
}

// waitError is a token wait the caller's context ended, with the identity
// endpoint's last answer. It wraps the token cache's error (errors.Is
// context.DeadlineExceeded works).
type waitError struct {
	err  error
	last answer
}

func (w *waitError) Error() string {
	return w.err.Error() + " (" + w.last.String() + ")"
}

// String says what the endpoint last answered.
func (a answer) String() string {
	if a.noAnswer {
		return "no answer: " + a.text
	}
	return "last answer: " + a.text
}

func (w *waitError) Unwrap() error { return w.err }
