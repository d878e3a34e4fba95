package driver

import (
	"os"
	"testing"

	"github.com/pgentra/pgentra/internal/pgtest"
)

// pg is the throwaway PostgreSQL of this test binary, started by the first
// integration test that needs it.
var pg pgtest.Lazy

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }
