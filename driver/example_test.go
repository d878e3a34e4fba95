package driver_test

import (
	"database/sql"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/lib/pq"
	"github.com/pgentra/pgentra/driver"
	"github.com/pgentra/pgentra/token"
)

// The one-line change: the driver name. The credential is
// DefaultAzureCredential, the user is derived from the token.
func Example() {
	db, err := sql.Open("pgentra", "host=myserver.postgres.database.azure.com dbname=app")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	// db.Ping() would now fetch a token and log in.
}

// A user-assigned managed identity named in the DSN.
func Example_managedIdentity() {
	db, err := sql.Open("pgentra",
		"postgres://id-orders@myserver.postgres.database.azure.com/orders?azure_credential=managed_identity&azure_client_id=5a9b7c1d-0000-0000-0000-6e2f8a3b4c5d")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
}

// A credential built in code, and debug logging of token activity.
func ExampleNewConnector() {
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		log.Fatal(err)
	}
	c, err := driver.NewConnector("host=myserver.postgres.database.azure.com user=orders-api dbname=orders",
		driver.WithCredential(cred),
		driver.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	if err != nil {
		log.Fatal(err)
	}
	db := sql.OpenDB(c)
	defer db.Close()
}

// Configuration mistakes are reported before any connection, naming the key.
func ExampleConfigError() {
	_, err := driver.NewConnector("host=myserver.postgres.database.azure.com azure_credentials=cli")
	var ce *driver.ConfigError
	if errors.As(err, &ce) {
		fmt.Println("bad key:", ce.Key)
	}
	fmt.Println(errors.Is(err, driver.ErrInvalidConfig))
	// Output:
	// bad key: azure_credentials
	// true
}

// Two pools on the same server — one for reads, one for writes — share one
// token cache, so they make one token request between them. The caller owns
// the cache and closes it after both pools.
func ExampleWithTokenCache() {
	cred, err := azidentity.NewManagedIdentityCredential(nil)
	if err != nil {
		log.Fatal(err)
	}
	cache := token.NewCache(cred, token.ScopePublic)
	defer cache.Close()

	writer, err := driver.NewConnector("host=myserver.postgres.database.azure.com user=orders-api dbname=orders",
		driver.WithTokenCache(cache))
	if err != nil {
		log.Fatal(err)
	}
	reader, err := driver.NewConnector("host=myserver-replica.postgres.database.azure.com user=orders-api dbname=orders",
		driver.WithTokenCache(cache))
	if err != nil {
		log.Fatal(err)
	}
	writeDB, readDB := sql.OpenDB(writer), sql.OpenDB(reader)
	defer writeDB.Close()
	defer readDB.Close()
}

// A refused login names the role pgentra tried, the token's identity (never
// the token) and a hint; the server's *pq.Error stays underneath.
func ExampleLoginError() {
	db, err := sql.Open("pgentra", "host=myserver.postgres.database.azure.com user=orders-api dbname=orders")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	err = db.Ping()
	var le *driver.LoginError
	if errors.As(err, &le) {
		log.Printf("login as %q refused; token for %s; %s", le.User, le.Principal, le.Hint)
	}
	var pe *pq.Error
	if errors.As(err, &pe) && pe.Code == "28P01" {
		log.Print("no role maps to this identity: run pgaadauth_create_principal as the Entra administrator")
	}
}

// LISTEN/NOTIFY that survives token expiry: pq.NewListener's API, but every
// (re)connect logs in with a token from pgentra's cache, so a connection
// dropped after the first token expired is re-established. A nil
// notification follows each reconnect: whatever was sent meanwhile is lost,
// so re-read the state it announces.
func ExampleNewListener() {
	l, err := driver.NewListener("host=myserver.postgres.database.azure.com user=orders-api dbname=orders",
		10*time.Second, time.Minute,
		func(ev pq.ListenerEventType, err error) {
			if err != nil {
				log.Printf("listener %v: %v", ev, err) // a *driver.LoginError carries the hint
			}
		})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	if err := l.Listen("orders"); err != nil {
		log.Fatal(err)
	}
	for n := range l.NotificationChannel() {
		if n == nil {
			log.Print("reconnected: reload what the notifications announce")
			continue
		}
		log.Printf("order %s", n.Extra)
	}
}

// A credential that could not give a token names itself, the identity the
// DSN chose and how to check it; no login was attempted.
func ExampleTokenError() {
	db, err := sql.Open("pgentra", "host=myserver.postgres.database.azure.com dbname=orders azure_credential=managed_identity azure_client_id=5a9b7c1d-0000-0000-0000-6e2f8a3b4c5d")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	var te *driver.TokenError
	if err := db.Ping(); errors.As(err, &te) {
		log.Printf("no token (%s): %v", te.IdentityKey, err)
	}
}
