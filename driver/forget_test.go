package driver

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"
)

// TestForgetPassword: the connection Connect returns is pq's own, yet
// printing it in every way fmt knows shows no token (Connect blanks it with
// pqinternal.ForgetPassword, whose own tests guard its reach into pq) — and it still works,
// including a query cancel (which reuses pq's saved config) and pq's
// notification handler (which type-asserts pq's type).
func TestForgetPassword(t *testing.T) {
	it := newITest(t, spClaims(), "forget-app")
	it.setPassword(it.cred.peekNext())
	c := it.connector("user=forget-app")
	db := sql.OpenDB(pq.ConnectorWithNotificationHandler(c, func(*pq.Notification) {}))
	defer db.Close()
	sc, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	tok := it.cred.lastToken()
	if tok == "" {
		t.Fatal("no token was issued")
	}
	err = sc.Raw(func(raw any) error {
		if _, ok := raw.(driver.Conn); !ok {
			return fmt.Errorf("raw conn is %T", raw)
		}
		if !strings.HasPrefix(fmt.Sprintf("%T", raw), "*pq.") {
			return fmt.Errorf("Connect returned %T, want pq's own connection", raw)
		}
		for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
			if s := fmt.Sprintf(verb, raw); strings.Contains(s, tok) {
				return fmt.Errorf("fmt %s of pq's connection shows the token", verb)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// A cancelled query: pq dials again with the saved config to send the
	// cancel request, which needs no password.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = sc.ExecContext(ctx, "select pg_sleep(30)")
	if err == nil || time.Since(start) > 10*time.Second {
		t.Fatalf("cancelled query: err=%v after %v", err, time.Since(start))
	}
	var pqErr *pq.Error
	if !errors.As(err, &pqErr) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled query: unexpected error %v", err)
	}
	if err := db.PingContext(context.Background()); err != nil {
		t.Fatalf("pool after a cancel: %v", err)
	}
}
