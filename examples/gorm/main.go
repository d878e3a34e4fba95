// Gorm shows GORM on pgentra: the gorm.io/driver/postgres dialector opened
// with DriverName "pgentra", AutoMigrate, create/read/update/delete, and a
// unique violation translated to gorm.ErrDuplicatedKey (TranslateError).
//
//	cd examples && go run ./gorm      # offline emulator, or PGHOST=... for Azure
//
// Copy open() when your GORM code already uses the postgres dialector: the
// only change from a password-based setup is DriverName and a DSN without a
// password. Set DriverName (not just Conn): without it the dialector assumes
// pgx and its migrator passes pgx-only arguments. Translation of pq's errors
// works through the dialector's fallback (SQLSTATE 23505 → ErrDuplicatedKey).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	_ "github.com/pgentra/pgentra/driver" // registers "pgentra"
	"github.com/pgentra/pgentra/examples/internal/exenv"
)

// Product is the example's table.
type Product struct {
	ID        uint   `gorm:"primaryKey"`
	Code      string `gorm:"uniqueIndex;not null"`
	Price     int
	CreatedAt time.Time
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	target, err := exenv.FromEnvironment(ctx, os.Stderr, "app-gorm")
	if err == nil {
		defer target.Close()
		err = run(ctx, os.Stdout, target.DSN)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gorm:", err)
		os.Exit(1)
	}
}

// open opens GORM on the pgentra driver. dsn is a libpq DSN without a
// password; azure_* keys may pick the credential ("" uses the PG* variables).
func open(dsn string) (*gorm.DB, error) {
	db, err := gorm.Open(postgres.New(postgres.Config{DriverName: "pgentra", DSN: dsn}), &gorm.Config{
		TranslateError: true, // *pq.Error 23505 → gorm.ErrDuplicatedKey, …
		Logger:         logger.Discard,
	})
	if err != nil {
		return nil, err
	}
	sqlDB, err := db.DB()
	if err != nil {
		return nil, err
	}
	// Tokens don't end open connections; recycling them spreads logins and
	// moves the pool to the new primary after a fail-over.
	sqlDB.SetConnMaxLifetime(30 * time.Minute)
	return db, nil
}

func run(ctx context.Context, out io.Writer, dsn string) error {
	gdb, err := open(dsn)
	if err != nil {
		return err
	}
	sqlDB, _ := gdb.DB()
	defer sqlDB.Close()
	db := gdb.WithContext(ctx)

	if err := db.AutoMigrate(&Product{}); err != nil {
		return fmt.Errorf("automigrate: %w", err)
	}
	fmt.Fprintln(out, "migrated table products")
	// Start from a clean slate so the program can run again.
	if err := db.Where("code IN ?", []string{"D42", "F10"}).Delete(&Product{}).Error; err != nil {
		return err
	}

	d42 := Product{Code: "D42", Price: 100}
	f10 := Product{Code: "F10", Price: 250}
	if err := db.Create([]*Product{&d42, &f10}).Error; err != nil {
		return fmt.Errorf("create: %w", err)
	}
	fmt.Fprintf(out, "created D42 (id %d) and F10 (id %d)\n", d42.ID, f10.ID)

	var got Product
	if err := db.First(&got, "code = ?", "D42").Error; err != nil {
		return fmt.Errorf("read: %w", err)
	}
	fmt.Fprintf(out, "read D42: price %d\n", got.Price)

	if err := db.Model(&got).Update("price", 200).Error; err != nil {
		return fmt.Errorf("update: %w", err)
	}
	fmt.Fprintln(out, "updated D42: price 200")

	err = db.Create(&Product{Code: "D42", Price: 1}).Error
	switch {
	case errors.Is(err, gorm.ErrDuplicatedKey):
		fmt.Fprintln(out, "second D42 refused: gorm.ErrDuplicatedKey")
	case err == nil:
		return errors.New("a second D42 was accepted")
	default:
		return fmt.Errorf("duplicate insert: want gorm.ErrDuplicatedKey, got %w", err)
	}

	if err := db.Delete(&f10).Error; err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	var n int64
	if err := db.Model(&Product{}).Count(&n).Error; err != nil {
		return err
	}
	fmt.Fprintf(out, "deleted F10: %d product(s) left\n", n)
	return nil
}
