package main

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/pgentra/pgentra/examples/internal/extest"
)

func TestMain(m *testing.M) { os.Exit(extest.Main(m)) }

func TestGORM(t *testing.T) {
	target := extest.WebApp(t, "app-gorm")
	ctx := extest.Context(t, time.Minute)
	// exenv gave the role a schema of its own ("app-gorm"), as an
	// administrator would GRANT it somewhere to create tables.

	var out bytes.Buffer
	if err := run(ctx, &out, target.DSN); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	for _, want := range []string{"migrated table products", "read D42: price 100", "second D42 refused: gorm.ErrDuplicatedKey", "deleted F10: 1 product(s) left"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}

	// The database state, seen by the superuser, not through GORM.
	var code string
	var price int
	err := target.Env.AdminDB.QueryRowContext(ctx, `select code, price from "app-gorm".products`).Scan(&code, &price)
	if err != nil || code != "D42" || price != 200 {
		t.Errorf("products = (%q, %d, %v), want the one row (D42, 200)", code, price, err)
	}

	// Running it again works (it cleans up after itself).
	out.Reset()
	if err := run(ctx, &out, target.DSN); err != nil {
		t.Fatalf("second run: %v\n%s", err, out.String())
	}

	// The translation itself, asserted by the test, with the server's error
	// still underneath.
	db, err := open(target.DSN)
	if err != nil {
		t.Fatal(err)
	}
	sqlDB, _ := db.DB()
	defer sqlDB.Close()
	err = db.WithContext(ctx).Create(&Product{Code: "D42"}).Error
	if !errors.Is(err, gorm.ErrDuplicatedKey) {
		t.Fatalf("duplicate: err = %v, want gorm.ErrDuplicatedKey", err)
	}
	if logins := target.Env.Front.Logins(); len(logins) == 0 || !logins[len(logins)-1].TLS {
		t.Errorf("front logins = %+v, want TLS logins", logins)
	}
}
