package driver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
)

// offlineTransport fails every request without touching the network.
type offlineTransport struct{}

func (offlineTransport) Do(*http.Request) (*http.Response, error) {
	return nil, errors.New("offline test transport")
}

// TestNoSecretInAnyOutput drives every failure path with recognisable
// tokens and secrets and checks errors, debug logs, String() and %+v.
func TestNoSecretInAnyOutput(t *testing.T) {
	const clientSecret = "CLIENTSECRETMARKER"
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var outputs []string
	record := func(v ...any) {
		for _, x := range v {
			if x == nil {
				continue
			}
			outputs = append(outputs, fmt.Sprintf("%v", x), fmt.Sprintf("%+v", x), fmt.Sprintf("%#v", x))
			if err, ok := x.(error); ok {
				outputs = append(outputs, err.Error())
			}
		}
	}
	ctx := context.Background()

	it := newITest(t, spClaims(), "leak-app")
	// 1. Login refused with a fresh token (no role password match).
	c := it.connector("user=leak-app", WithLogger(logger))
	_, err := c.Connect(ctx)
	record(err, c)
	// 2. Cached token refused, retry refused too. (First the role is fixed
	// for the cached token, which was refused when fresh and so would not
	// be retried.)
	it.setPassword(it.cred.lastToken())
	conn, err := c.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	it.setPassword("something-else")
	_, err = c.Connect(ctx)
	record(err)
	// 3. No user and a token that names nobody.
	c3 := it.connector("", WithLogger(logger))
	_, err = c3.Connect(ctx)
	record(err, c3)
	// 4. A token that is not a JWT at all, with no user.
	c4, err := NewConnector(it.dsn(""), WithCredential(tokenFunc(func() string { return "opaque-" + secretMarker })), WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c4.Connect(ctx)
	record(err, c4)
	c4.Close()
	// 5. Context deadline during the connect.
	tctx, cancel := context.WithTimeout(ctx, time.Nanosecond)
	_, err = c.Connect(tctx)
	cancel()
	record(err)
	// 6. Credential failure.
	failing := &fakeCredential{err: errCredential}
	c6 := it.connector("user=leak-app", WithCredential(failing), WithLogger(logger))
	_, err = c6.Connect(ctx)
	record(err)
	if !errors.Is(err, errCredential) {
		t.Errorf("credential error not reachable with errors.Is: %v", err)
	}
	// 7. A client secret from the environment, against an offline authority.
	c7, err := NewConnector("host=srv.postgres.database.azure.com user=u azure_credential=client_secret azure_client_id=cid azure_tenant_id=tid",
		withGetenv(env(map[string]string{"AZURE_CLIENT_SECRET": clientSecret})),
		WithClientOptions(azcore.ClientOptions{Transport: offlineTransport{}}), WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = c7.Connect(cctx)
	cancel()
	record(err, c7)
	c7.Close()

	outputs = append(outputs, logs.String())
	for _, out := range outputs {
		for _, secret := range []string{secretMarker, clientSecret} {
			if strings.Contains(out, secret) {
				t.Errorf("output contains %s:\n%s", secret, out)
			}
		}
	}
	if !strings.Contains(logs.String(), "level=DEBUG") {
		t.Errorf("debug logging produced nothing; the scan proves little:\n%s", logs.String())
	}
}

// tokenFunc is a credential that returns whatever f says.
type tokenFunc func() string

func (f tokenFunc) GetToken(context.Context, policyOpts) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: f(), ExpiresOn: time.Now().Add(time.Hour)}, nil
}
