package driver

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/pgentra/pgentra/token"
)

// Options that contradict each other are refused, naming both, instead of one
// of them being ignored without a word; options that go together still work.
func TestConflictingOptions(t *testing.T) {
	cred := &fakeCredential{}
	cache := token.NewCache(cred, token.ScopePublic)
	defer cache.Close()
	var (
		withCred      = WithCredential(cred)
		withCache     = WithTokenCache(cache)
		withClient    = WithClientOptions(azcore.ClientOptions{}) // even the zero value: it was asked for
		withDiscovery = WithDisableInstanceDiscovery()
		withCacheOpts = WithTokenCacheOptions(token.WithFetchTimeout(time.Minute))
	)
	for _, tc := range []struct {
		name string
		opts []Option
		want []string // the options the error must name; none: no error
	}{
		{"credential and client options", []Option{withCred, withClient}, []string{"WithCredential", "WithClientOptions"}},
		{"client options and credential", []Option{withClient, withCred}, []string{"WithCredential", "WithClientOptions"}},
		{"credential and instance discovery", []Option{withCred, withDiscovery}, []string{"WithCredential", "WithDisableInstanceDiscovery"}},
		{"cache and credential", []Option{withCache, withCred}, []string{"WithTokenCache", "WithCredential"}},
		{"cache and client options", []Option{withCache, withClient}, []string{"WithTokenCache", "WithClientOptions"}},
		{"cache and instance discovery", []Option{withCache, withDiscovery}, []string{"WithTokenCache", "WithDisableInstanceDiscovery"}},
		{"cache and cache options", []Option{withCache, withCacheOpts}, []string{"WithTokenCache", "WithTokenCacheOptions"}},
		{"cache and empty cache options", []Option{withCache, WithTokenCacheOptions()}, []string{"WithTokenCache", "WithTokenCacheOptions"}},

		{"credential and cache options", []Option{withCred, withCacheOpts}, nil},
		{"client options and instance discovery", []Option{withClient, withDiscovery, withCacheOpts}, nil},
		{"cache alone", []Option{withCache}, nil},
		{"nil credential and client options", []Option{WithCredential(nil), withClient}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewConnector("host=db.postgres.database.azure.com user=app dbname=d azure_credential=managed_identity", tc.opts...)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("NewConnector: %v; want no error", err)
				}
				c.Close()
				return
			}
			if err == nil {
				c.Close()
				t.Fatalf("NewConnector succeeded; want an error naming %v", tc.want)
			}
			if !errors.Is(err, ErrConflictingOptions) || !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %v; want it to match ErrConflictingOptions and ErrInvalidConfig", err)
			}
			for _, name := range tc.want {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("error %q does not name %s", err, name)
				}
			}
			if n := strings.Count(err.Error(), "pgentra:"); n != 1 {
				t.Errorf("error %q says \"pgentra:\" %d times, want once", err, n)
			}
		})
	}
}
