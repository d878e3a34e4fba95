package token

import (
	"reflect"
	"slices"
	"testing"
)

// The Cache's public methods are the ones a user of the package (pgx, another
// pool, a metrics exporter) has a documented use for; what only the driver
// needs goes through internal/tokenx. A new exported method must earn its
// place here.
func TestCacheMethodsArePublicAPI(t *testing.T) {
	var got []string
	typ := reflect.TypeOf(&Cache{})
	for i := range typ.NumMethod() {
		got = append(got, typ.Method(i).Name)
	}
	want := []string{"Close", "ExpiresOn", "Refresh", "Scope", "Token"}
	if !slices.Equal(got, want) {
		t.Errorf("*Cache methods = %v, want %v", got, want)
	}
}
