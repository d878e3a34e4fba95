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
	ObjectID string // the oid its tokens carry (a group's: the oid its role is mapped to)
	Type     string // TypeUser, TypeService or TypeGroup
	// ManagedIdentity marks a TypeService entry that is a managed identity rather
	// than an app registration's service principal. Azure tells them apart when an
	// app token meets a user role (MsgManagedIdentityForUserRole versus
	// MsgServicePrincipalForUserRole); their tokens look alike.
	ManagedIdentity bool
	// Members are the object IDs of a TypeGroup entry's direct members (users
	// or application identities), whose own tokens log in to the group's
	// role. Only direct membership counts: a group listed here does not make
	// its members members (nested groups are not emulated). Adding an entry
	// replaces the membership recorded for its ObjectID, so adding it again
	// with the current members updates it. Other types must have none.
	Members []string
}

func (e DirectoryEntry) validate() error {
	if e.Name == "" || e.ObjectID == "" {
		return fmt.Errorf("directory entry %q: Name and ObjectID are required", e.Name)
	}
	switch e.Type {
	case TypeUser, TypeService:
		if e.ManagedIdentity && e.Type != TypeService {
			return fmt.Errorf("directory entry %q: a managed identity has Type %q", e.Name, TypeService)
		}
		if len(e.Members) > 0 {
			return fmt.Errorf("directory entry %q: a %s has no members; only a %s does", e.Name, e.Type, TypeGroup)
		}
		return nil
	case TypeGroup:
		if e.ManagedIdentity {
			return fmt.Errorf("directory entry %q: a managed identity has Type %q", e.Name, TypeService)
		}
		for _, m := range e.Members {
			if m == "" {
				return fmt.Errorf("directory entry %q: empty member object ID", e.Name)
			}
			if strings.EqualFold(m, e.ObjectID) {
				return fmt.Errorf("directory entry %q: a group cannot be its own member", e.Name)
			}
		}
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
//	pg_catalog.pgaadauth_sync_roles_for_group_members() (see SetGroupSync)
//
// Microsoft's docs disagree on pgaadauth_list_principals' first column (2024: rolname,
// 2025: rolename); the emulator keeps rolname, so portable queries use select *.
//
// with Azure's signatures and result texts. Call it once per cluster before creating
// principals; calling it again (even concurrently) is safe, updates the tenant and adds
// the directory entries (with their group members). adminDB must be a superuser
// connection.
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

// SetGroupSync sets the emulated server parameter pgaadauth.enable_group_sync (on Azure:
// az postgres flexible-server parameter set --name pgaadauth.enable_group_sync --value
// ON). With it on, select * from pgaadauth_sync_roles_for_group_members(); gives every
// direct member of a group role (that the directory knows by name) a login role of its
// own, mapped to its oid and granted the group role, so members can also log in as
// themselves; with it off (the default) the function changes nothing and members log
// in only through the group's role. InstallAADAuth must have run.
func SetGroupSync(ctx context.Context, adminDB *sql.DB, on bool) error {
	if adminDB == nil {
		return errors.New("pgfront: SetGroupSync: adminDB is nil")
	}
	res, err := adminDB.ExecContext(ctx, `UPDATE pgaadauth.settings SET enable_group_sync = $1 WHERE id = 1`, on)
	if err != nil {
		return fmt.Errorf("pgfront: SetGroupSync: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n != 1 {
		return errors.New("pgfront: SetGroupSync: pgaadauth is not installed (run InstallAADAuth first)")
	}
	return nil
}

// AddDirectoryEntry adds e to (or updates it in) the emulated tenant directory, so a
// later pgaadauth_create_principal(e.Name, …) finds it, and replaces the group
// membership recorded for e.ObjectID with e.Members. Calling it again with the same
// entry changes nothing; with a group's new members it updates who may log in to the
// group's role, effective from the next login. InstallAADAuth must have run.
func AddDirectoryEntry(ctx context.Context, adminDB *sql.DB, e DirectoryEntry) error {
	if adminDB == nil {
		return errors.New("pgfront: AddDirectoryEntry: adminDB is nil")
	}
	if err := e.validate(); err != nil {
		return fmt.Errorf("pgfront: AddDirectoryEntry: %w", err)
	}
	tx, err := adminDB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("pgfront: AddDirectoryEntry: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	// Concurrent updates of one group's members would otherwise interleave.
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, installLock); err != nil {
		return fmt.Errorf("pgfront: AddDirectoryEntry: lock: %w", err)
	}
	if err := addDirectoryEntry(ctx, tx, e); err != nil {
		return fmt.Errorf("pgfront: AddDirectoryEntry: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("pgfront: AddDirectoryEntry: commit: %w", err)
	}
	return nil
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// addDirectoryEntry upserts e and replaces the members recorded for its object ID.
// Run it in a transaction, so a login never sees a group half updated.
func addDirectoryEntry(ctx context.Context, db execer, e DirectoryEntry) error {
	_, err := db.ExecContext(ctx, `INSERT INTO pgaadauth.directory (name, object_id, object_type, managed_identity)
		VALUES ($1, lower($2), $3, $4)
		ON CONFLICT (name) DO UPDATE SET object_id = EXCLUDED.object_id, object_type = EXCLUDED.object_type,
			managed_identity = EXCLUDED.managed_identity`,
		e.Name, e.ObjectID, e.Type, e.ManagedIdentity)
	if err != nil {
		return fmt.Errorf("add directory entry %q: %w", e.Name, err)
	}
	if _, err := db.ExecContext(ctx, `DELETE FROM pgaadauth.group_members WHERE group_object_id = lower($1)`, e.ObjectID); err != nil {
		return fmt.Errorf("reset members of directory entry %q: %w", e.Name, err)
	}
	for _, m := range e.Members {
		if _, err := db.ExecContext(ctx, `INSERT INTO pgaadauth.group_members (group_object_id, member_object_id)
			VALUES (lower($1), lower($2)) ON CONFLICT DO NOTHING`, e.ObjectID, m); err != nil {
			return fmt.Errorf("add member %s to directory entry %q: %w", m, e.Name, err)
		}
	}
	return nil
}

// roleMapping is what the principal registry says about the role a login names,
// relative to the token's oid.
type roleMapping struct {
	kind   string // the role's principal type: TypeUser, TypeService or TypeGroup
	ownOID bool   // the role is mapped to the token's oid
	member bool   // the role is a group's and the oid is one of its direct members
	mfa    bool   // the role was created with isMfa
	// tokenMI: the tenant directory lists the token's oid as a managed identity.
	tokenMI bool
}

// lookupRole returns the registry's mapping of role (an existing role created by
// pgaadauth_create_principal*) for a token carrying oid; found is false when role
// is no such Entra role.
func lookupRole(ctx context.Context, db *sql.DB, role, oid string) (m roleMapping, found bool, err error) {
	err = db.QueryRowContext(ctx, `SELECT p.object_type, p.object_id = lower($2),
			p.object_type = 'group' AND EXISTS (SELECT FROM pgaadauth.group_members g
				WHERE g.group_object_id = p.object_id AND g.member_object_id = lower($2)),
			p.is_mfa,
			EXISTS (SELECT FROM pgaadauth.directory d WHERE d.object_id = lower($2) AND d.managed_identity)
		FROM pgaadauth.principals p
		JOIN pg_catalog.pg_roles r ON r.rolname = p.rolname
		WHERE p.rolname::text = $1`, role, oid).Scan(&m.kind, &m.ownOID, &m.member, &m.mfa, &m.tokenMI)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return roleMapping{}, false, nil
	case err != nil:
		return roleMapping{}, false, fmt.Errorf("look up role %q for principal %s: %w", role, oid, err)
	}
	return m, true, nil
}
