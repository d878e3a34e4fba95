// Package deps pins the module's dependencies while the packages that use them
// are written. It is deleted once every dependency has a real importer.
package deps

import (
	_ "github.com/Azure/azure-sdk-for-go/sdk/azcore"
	_ "github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	_ "github.com/golang-jwt/jwt/v5"
	_ "github.com/jackc/pgx/v5/pgproto3"
	_ "github.com/lib/pq"
	_ "golang.org/x/sync/singleflight"
)
