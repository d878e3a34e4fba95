package pgfront

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// Principal types, as pgaadauth_create_principal_with_oid's objectType and
// pgaadauth_list_principals' principalType name them.
const (
	TypeUser    = "user"    // an Entra user (token idtyp "user")
	TypeService = "service" // a service principal or managed identity (idtyp "app")
	TypeGroup   = "group"   // an Entra group
)

// AdminRole is the role Entra administrators are members of, like Azure's.
const AdminRole = "azure_pg_admin"

// DirectoryEntry is one object of the emulated Entra tenant, which
// pgaadauth_create_principal resolves names against (Azure asks Microsoft Graph).
type DirectoryEntry struct {
	Name     string // display name or UPN: what pgaadauth_create_principal is called with
	ObjectID string // the oid its tokens carry
	Type     string // TypeUser, TypeService or TypeGroup
}

func (e DirectoryEntry) validate() error {
	if e.Name == "" || e.ObjectID == "" {
		return fmt.Errorf("directory entry %q: Name and ObjectID are required", e.Name)
	}
	switch e.Type {
	case TypeUser, TypeService, TypeGroup:
		return nil
	}
	return fmt.Errorf("directory entry %q: Type %q is not %q, %q or %q", e.Name, e.Type, TypeUser, TypeService, TypeGroup)
}

// installLock serialises concurrent installs (parallel tests sharing a cluster):
// CREATE ... IF NOT EXISTS is not safe against itself.
const installLock = 0x7067_6161_6461 // "pgaada"

// InstallAADAuth creates, in the database adminDB is connected to (use "postgres", as
// on Azure), the emulated pgaadauth: a schema "pgaadauth" holding the tenant
// directory and the principal registry, the role azure_pg_admin, and the functions
//
//	pg_catalog.pgaadauth_create_principal(roleName text, isAdmin boolean, isMfa boolean) → text
//	pg_catalog.pgaadauth_create_principal_with_oid(roleName text, objectId text, objectType text, isAdmin boolean, isMfa boolean) → text
//	pg_catalog.pgaadauth_list_principals(isAdminValue boolean)
//	    → TABLE(rolname name, principalType text, objectId text, tenantId text, isMfa integer, isAdmin integer)
//
// with Azure's signatures and result texts. Call it once per cluster before creating
// principals; calling it again (even concurrently) is safe, updates the tenant and adds
// the directory entries. adminDB must be a superuser connection.
func InstallAADAuth(ctx context.Context, adminDB *sql.DB, tenantID string, directory []DirectoryEntry) error {
	if adminDB == nil {
		return errors.New("pgfront: InstallAADAuth: adminDB is nil")
	}
	if tenantID == "" {
		return errors.New("pgfront: InstallAADAuth: tenantID is empty")
	}
	for _, e := range directory {
		if err := e.validate(); err != nil {
			return fmt.Errorf("pgfront: InstallAADAuth: %w", err)
		}
	}
	tx, err := adminDB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("pgfront: InstallAADAuth: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, installLock); err != nil {
		return fmt.Errorf("pgfront: InstallAADAuth: lock: %w", err)
	}
	for i, stmt := range installSQL {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("pgfront: InstallAADAuth: statement %d (%.40q): %w", i+1, strings.TrimSpace(stmt), err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO pgaadauth.settings (id, tenant_id) VALUES (1, $1)
		ON CONFLICT (id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id`, tenantID); err != nil {
		return fmt.Errorf("pgfront: InstallAADAuth: set tenant: %w", err)
	}
	for _, e := range directory {
		if err := addDirectoryEntry(ctx, tx, e); err != nil {
			return fmt.Errorf("pgfront: InstallAADAuth: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("pgfront: InstallAADAuth: commit: %w", err)
	}
	return nil
}

// AddDirectoryEntry adds e to (or updates it in) the emulated tenant directory, so a
// later pgaadauth_create_principal(e.Name, …) finds it. InstallAADAuth must have run.
func AddDirectoryEntry(ctx context.Context, adminDB *sql.DB, e DirectoryEntry) error {
	if adminDB == nil {
		return errors.New("pgfront: AddDirectoryEntry: adminDB is nil")
	}
	if err := e.validate(); err != nil {
		return fmt.Errorf("pgfront: AddDirectoryEntry: %w", err)
	}
	if err := addDirectoryEntry(ctx, adminDB, e); err != nil {
		return fmt.Errorf("pgfront: AddDirectoryEntry: %w", err)
	}
	return nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func addDirectoryEntry(ctx context.Context, db execer, e DirectoryEntry) error {
	_, err := db.ExecContext(ctx, `INSERT INTO pgaadauth.directory (name, object_id, object_type)
		VALUES ($1, lower($2), $3)
		ON CONFLICT (name) DO UPDATE SET object_id = EXCLUDED.object_id, object_type = EXCLUDED.object_type`,
		e.Name, e.ObjectID, e.Type)
	if err != nil {
		return fmt.Errorf("add directory entry %q: %w", e.Name, err)
	}
	return nil
}

// registered is one row of the principal registry.
type registered struct {
	role, kind string
}

// lookupPrincipals returns the existing roles mapped to oid.
func lookupPrincipals(ctx context.Context, db *sql.DB, oid string) ([]registered, error) {
	rows, err := db.QueryContext(ctx, `SELECT p.rolname, p.object_type FROM pgaadauth.principals p
		JOIN pg_catalog.pg_roles r ON r.rolname = p.rolname
		WHERE p.object_id = lower($1) ORDER BY p.rolname`, oid)
	if err != nil {
		return nil, fmt.Errorf("look up principal %s: %w", oid, err)
	}
	defer rows.Close()
	var out []registered
	for rows.Next() {
		var r registered
		if err := rows.Scan(&r.role, &r.kind); err != nil {
			return nil, fmt.Errorf("look up principal %s: %w", oid, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up principal %s: %w", oid, err)
	}
	return out, nil
}
