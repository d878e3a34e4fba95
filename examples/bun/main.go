// Bun shows the bun ORM on pgentra: bun.NewDB over sql.Open("pgentra", dsn)
// with the PostgreSQL dialect, CreateTable IfNotExists from a model struct,
// a bulk insert with Returning, Select with Where into a slice, an Update,
// transactions with RunInTx (one committed, one rolled back), and rows
// owned by the Entra role (current_user).
//
//	cd examples && go run ./bun      # offline emulator, or PGHOST=... for Azure
//
// Copy open(): bun's dialect/pgdialect only writes PostgreSQL's SQL and works
// on top of any database/sql driver, so the one change from a password-based
// setup is the driver name and a DSN without a password. Don't use bun's own
// driver/pgdriver here: that is a separate driver that dials by itself with a
// password and knows nothing of Entra tokens.
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/uptrace/bun"
	"github.com/uptrace/bun/dialect/pgdialect"

	_ "github.com/pgentra/pgentra/driver" // registers "pgentra"
	"github.com/pgentra/pgentra/examples/internal/exenv"
)

// Book is one row of the books table; bun derives the table from it.
type Book struct {
	bun.BaseModel `bun:"table:books"`

	ID    int64  `bun:",pk,autoincrement"`
	Title string `bun:",notnull,unique"`
	Stock int    `bun:",notnull"`
	// Owner is left empty on insert: nullzero sends DEFAULT, and the
	// server fills in current_user, the role pgentra logged in as.
	Owner string `bun:",nullzero,notnull,default:current_user"`
}

// errNotEnough makes a transfer's transaction roll back.
var errNotEnough = errors.New("not enough copies")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	target, err := exenv.FromEnvironment(ctx, os.Stderr, "app-bun")
	if err == nil {
		defer target.Close()
		err = run(ctx, os.Stdout, target.DSN)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bun:", err)
		os.Exit(1)
	}
}

// open opens bun on the pgentra driver. dsn is a libpq DSN without a
// password; azure_* keys may pick the credential ("" uses the PG* variables).
func open(dsn string) (*bun.DB, error) {
	sqldb, err := sql.Open("pgentra", dsn)
	if err != nil {
		return nil, err
	}
	// Tokens don't end open connections; recycling them spreads logins and
	// moves the pool to the new primary after a fail-over.
	sqldb.SetConnMaxLifetime(30 * time.Minute)
	return bun.NewDB(sqldb, pgdialect.New()), nil
}

func run(ctx context.Context, out io.Writer, dsn string) error {
	db, err := open(dsn)
	if err != nil {
		return err
	}
	defer db.Close()

	if _, err := db.NewCreateTable().Model((*Book)(nil)).IfNotExists().Exec(ctx); err != nil {
		return fmt.Errorf("create table: %w", err)
	}
	// Start from a clean slate so the program can run again.
	if _, err := db.NewTruncateTable().Model((*Book)(nil)).Exec(ctx); err != nil { // RESTART IDENTITY
		return fmt.Errorf("truncate: %w", err)
	}
	fmt.Fprintln(out, "table books ready")

	// Bulk insert: one INSERT … VALUES (…), (…), (…) RETURNING, which fills
	// in the IDs and the owner the server chose.
	books := []Book{
		{Title: "The Go Programming Language", Stock: 4},
		{Title: "Designing Data-Intensive Applications", Stock: 0},
		{Title: "PostgreSQL: Up and Running", Stock: 2},
	}
	if _, err := db.NewInsert().Model(&books).Returning("id, owner").Exec(ctx); err != nil {
		return fmt.Errorf("insert: %w", err)
	}
	for _, b := range books {
		fmt.Fprintf(out, "inserted #%d %q owner=%s\n", b.ID, b.Title, b.Owner)
	}

	// Select with Where into a slice.
	var inStock []Book
	if err := db.NewSelect().Model(&inStock).Where("stock > ?", 0).Order("id").Scan(ctx); err != nil {
		return fmt.Errorf("select: %w", err)
	}
	for _, b := range inStock {
		fmt.Fprintf(out, "in stock: #%d %q (%d)\n", b.ID, b.Title, b.Stock)
	}

	// Update one column of a loaded row, by primary key.
	restock := books[1]
	restock.Stock = 5
	res, err := db.NewUpdate().Model(&restock).Column("stock").WherePK().Exec(ctx)
	if err != nil {
		return fmt.Errorf("update: %w", err)
	}
	n, _ := res.RowsAffected()
	fmt.Fprintf(out, "updated #%d: stock 5 (%d row)\n", restock.ID, n)

	// Transactions: a transfer that commits, then one that rolls back.
	if err := transfer(ctx, db, books[1].ID, books[0].ID, 3); err != nil {
		return fmt.Errorf("transfer: %w", err)
	}
	fmt.Fprintf(out, "moved 3 copies #%d → #%d: committed\n", books[1].ID, books[0].ID)
	err = transfer(ctx, db, books[2].ID, books[0].ID, 10)
	if !errors.Is(err, errNotEnough) {
		return fmt.Errorf("transfer of 10 copies: want errNotEnough, got %v", err)
	}
	fmt.Fprintf(out, "moved 10 copies #%d → #%d: rolled back (%v)\n", books[2].ID, books[0].ID, err)

	var all []Book
	if err := db.NewSelect().Model(&all).Order("id").Scan(ctx); err != nil {
		return fmt.Errorf("select all: %w", err)
	}
	for _, b := range all {
		fmt.Fprintf(out, "stock: #%d %d\n", b.ID, b.Stock)
	}

	// Who owns the rows: the role pgentra logged in as with its token.
	var user string
	var owned int
	if err := db.NewSelect().Model((*Book)(nil)).
		ColumnExpr("current_user").ColumnExpr("count(*)").
		Where("owner = current_user").GroupExpr("current_user").
		Scan(ctx, &user, &owned); err != nil {
		return fmt.Errorf("owner: %w", err)
	}
	fmt.Fprintf(out, "current_user %s owns %d rows\n", user, owned)
	return nil
}

// transfer moves n copies from one book to another in one transaction:
// RunInTx commits when the function returns nil and rolls back otherwise.
func transfer(ctx context.Context, db *bun.DB, from, to int64, n int) error {
	return db.RunInTx(ctx, nil, func(ctx context.Context, tx bun.Tx) error {
		var left int
		if err := tx.NewUpdate().Model((*Book)(nil)).
			Set("stock = stock - ?", n).Where("id = ?", from).
			Returning("stock").Scan(ctx, &left); err != nil {
			return err
		}
		if left < 0 {
			return fmt.Errorf("%w in #%d: %d short", errNotEnough, from, -left)
		}
		_, err := tx.NewUpdate().Model((*Book)(nil)).
			Set("stock = stock + ?", n).Where("id = ?", to).Exec(ctx)
		return err
	})
}
