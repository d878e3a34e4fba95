package pgfront

// installSQL creates the emulated pgaadauth objects idempotently. The functions are
// SECURITY DEFINER (owned by the installing superuser) so Entra administrators, who
// are not superusers, can create roles and write the registry, as on Azure; they
// check that the session user is a superuser or a member of azure_pg_admin.
var installSQL = []string{
	`CREATE SCHEMA IF NOT EXISTS pgaadauth`,
	`REVOKE ALL ON SCHEMA pgaadauth FROM PUBLIC`,
	`CREATE TABLE IF NOT EXISTS pgaadauth.settings (
		id int PRIMARY KEY CHECK (id = 1),
		tenant_id text NOT NULL)`,
	`CREATE TABLE IF NOT EXISTS pgaadauth.directory (
		name text PRIMARY KEY,
		object_id text NOT NULL,
		object_type text NOT NULL CHECK (object_type IN ('user', 'service', 'group')))`,
	`ALTER TABLE pgaadauth.directory ADD COLUMN IF NOT EXISTS managed_identity boolean NOT NULL DEFAULT false`,
	`ALTER TABLE pgaadauth.settings ADD COLUMN IF NOT EXISTS enable_group_sync boolean NOT NULL DEFAULT false`,
	`CREATE TABLE IF NOT EXISTS pgaadauth.group_members (
		group_object_id text NOT NULL,
		member_object_id text NOT NULL,
		PRIMARY KEY (group_object_id, member_object_id))`,
	`CREATE TABLE IF NOT EXISTS pgaadauth.principals (
		rolname name PRIMARY KEY,
		object_id text NOT NULL,
		object_type text NOT NULL CHECK (object_type IN ('user', 'service', 'group')),
		is_admin boolean NOT NULL,
		is_mfa boolean NOT NULL)`,
	`DO $$ BEGIN
		IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = 'azure_pg_admin') THEN
			CREATE ROLE azure_pg_admin NOLOGIN;
		END IF;
	END $$`,
	// As on Azure, Entra administrators (azure_pg_admin) may create schemas
	// in the postgres database and own its public schema, without being
	// superusers: docs/admin.sql depends on it.
	`DO $$ BEGIN
		IF (SELECT datdba FROM pg_catalog.pg_database WHERE datname = current_database()) <> 'azure_pg_admin'::regrole THEN
			EXECUTE format('ALTER DATABASE %I OWNER TO azure_pg_admin', current_database());
		END IF;
	END $$`,
	// require_admin's message is emulator wording: Azure's text is not known (a
	// third-party script expects "permission denied for function pgaadauth_create_principal").
	`CREATE OR REPLACE FUNCTION pgaadauth.require_admin() RETURNS void
	LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $fn$
	BEGIN
		IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = session_user AND rolsuper)
		   AND NOT pg_has_role(session_user, 'azure_pg_admin', 'MEMBER') THEN
			RAISE EXCEPTION 'permission denied: only Microsoft Entra administrators can manage Microsoft Entra principals'
				USING ERRCODE = '42501';
		END IF;
	END $fn$`,
	`CREATE OR REPLACE FUNCTION pg_catalog.pgaadauth_create_principal_with_oid(
		roleName text, objectId text, objectType text, isAdmin boolean, isMfa boolean)
	RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $fn$
	BEGIN
		PERFORM pgaadauth.require_admin();
		IF roleName IS NULL OR roleName = '' OR objectId IS NULL OR objectId = '' THEN
			RAISE EXCEPTION 'roleName and objectId must not be empty' USING ERRCODE = '22023';
		END IF;
		IF objectType IS NULL OR objectType NOT IN ('user', 'service', 'group') THEN
			RAISE EXCEPTION 'objectType must be one of user, group or service, not %', objectType
				USING ERRCODE = '22023';
		END IF;
		IF coalesce(isAdmin, false) THEN
			EXECUTE format('CREATE ROLE %I LOGIN CREATEROLE CREATEDB IN ROLE azure_pg_admin', roleName);
		ELSE
			EXECUTE format('CREATE ROLE %I LOGIN', roleName);
		END IF;
		INSERT INTO pgaadauth.principals (rolname, object_id, object_type, is_admin, is_mfa)
		VALUES (roleName, lower(objectId), objectType, coalesce(isAdmin, false), coalesce(isMfa, false))
		ON CONFLICT (rolname) DO UPDATE SET object_id = EXCLUDED.object_id,
			object_type = EXCLUDED.object_type, is_admin = EXCLUDED.is_admin, is_mfa = EXCLUDED.is_mfa;
		RETURN format('Created role for "%s"', roleName);
	END $fn$`,
	`CREATE OR REPLACE FUNCTION pg_catalog.pgaadauth_create_principal(roleName text, isAdmin boolean, isMfa boolean)
	RETURNS text LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $fn$
	DECLARE
		entry record;
	BEGIN
		PERFORM pgaadauth.require_admin();
		SELECT object_id, object_type INTO entry FROM pgaadauth.directory WHERE name = roleName;
		IF NOT FOUND THEN
			RAISE EXCEPTION 'Could not validate AAD user % because its name is not found in the tenant.', roleName
				USING ERRCODE = '42704';
		END IF;
		RETURN pg_catalog.pgaadauth_create_principal_with_oid(roleName, entry.object_id, entry.object_type, isAdmin, isMfa);
	END $fn$`,
	`CREATE OR REPLACE FUNCTION pg_catalog.pgaadauth_list_principals(isAdminValue boolean)
	RETURNS TABLE(rolname name, principalType text, objectId text, tenantId text, isMfa integer, isAdmin integer)
	LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $fn$
		SELECT p.rolname, p.object_type, p.object_id, s.tenant_id, p.is_mfa::integer, p.is_admin::integer
		FROM pgaadauth.principals p
		JOIN pg_roles r ON r.rolname = p.rolname
		CROSS JOIN pgaadauth.settings s
		WHERE p.is_admin OR NOT coalesce($1, false)
		ORDER BY p.rolname
	$fn$`,
	// Group sync (pgaadauth.enable_group_sync, Azure docs security-entra-concepts.md):
	// every direct member of a group role that the directory knows by name gets a
	// LOGIN role of its own, mapped to its oid, and is granted the group role. Azure
	// runs it every 30 minutes; the emulator only when called. Its result and its
	// notice with sync off are emulator wording (Azure's are not documented).
	`CREATE OR REPLACE FUNCTION pg_catalog.pgaadauth_sync_roles_for_group_members()
	RETURNS void LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $fn$
	DECLARE
		m record;
	BEGIN
		PERFORM pgaadauth.require_admin();
		IF NOT coalesce((SELECT enable_group_sync FROM pgaadauth.settings WHERE id = 1), false) THEN
			RAISE NOTICE 'pgaadauth.enable_group_sync is off: no roles synchronised';
			RETURN;
		END IF;
		FOR m IN SELECT p.rolname AS group_role, d.name, d.object_id, d.object_type
			FROM pgaadauth.principals p
			JOIN pg_roles gr ON gr.rolname = p.rolname
			JOIN pgaadauth.group_members g ON g.group_object_id = p.object_id
			JOIN pgaadauth.directory d ON d.object_id = g.member_object_id AND d.object_type <> 'group'
			WHERE p.object_type = 'group'
			ORDER BY p.rolname, d.name
		LOOP
			IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = m.name) THEN
				EXECUTE format('CREATE ROLE %I LOGIN', m.name);
				INSERT INTO pgaadauth.principals (rolname, object_id, object_type, is_admin, is_mfa)
				VALUES (m.name, m.object_id, m.object_type, false, false)
				ON CONFLICT (rolname) DO UPDATE SET object_id = EXCLUDED.object_id,
					object_type = EXCLUDED.object_type;
			END IF;
			IF EXISTS (SELECT FROM pgaadauth.principals WHERE rolname = m.name AND object_id = m.object_id) THEN
				EXECUTE format('GRANT %I TO %I', m.group_role, m.name);
			END IF;
		END LOOP;
	END $fn$`,
}
