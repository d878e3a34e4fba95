-- What a Microsoft Entra administrator runs for an application's role:
--
--   psql -v ON_ERROR_STOP=1 -v role=<identity_name> -v db=<database> -f docs/admin.sql
--
-- connected (any database) as the Entra administrator, with a token as the
-- password (PGPASSWORD). It creates the role with pgaadauth_create_principal
-- (in the postgres database, where Azure keeps it) unless it exists, lets it
-- connect to <database>, and gives it a schema named like it, first in the
-- default search_path ("$user", public): ORMs and migration tools create and
-- find their tables there with no change to the DSN. Running it again
-- changes nothing.
--
-- Why not CREATE SCHEMA ... AUTHORIZATION <role>: that needs membership in
-- the role, and an Entra administrator is not superuser nor a member of the
-- roles it creates: PostgreSQL answers 'must be member of role "<role>"'.
-- So the administrator owns the schema and grants the role USAGE and CREATE
-- on it; the tables the role creates are the role's own. No step here needs
-- membership, so no GRANT <role> TO current_user either: on PostgreSQL 15
-- CREATEROLE may grant any non-superuser role, but 16 and later no longer
-- let CREATEROLE grant membership in roles it does not hold WITH ADMIN
-- OPTION (which depends on who created the role).
--
-- Tried on PostgreSQL 15 only (the offline emulator's Entra-checking front,
-- as an Entra administrator: CREATEROLE, member of azure_pg_admin, not
-- superuser). On 16 and later nothing here should differ, since no step
-- needs membership; CREATE SCHEMA ... AUTHORIZATION <role> would then work
-- only if the administrator held the role WITH ADMIN OPTION.
-- The administrator needs CREATE on <database>: it has it on a database it
-- created, and through azure_pg_admin on postgres; for a database another
-- role owns, that owner first runs GRANT CREATE ON DATABASE.

\connect postgres
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') AS create_role \gset
\if :create_role
SELECT * FROM pgaadauth_create_principal(:'role', false, false);
\endif

\connect :"db"
GRANT CONNECT ON DATABASE :"db" TO :"role";
CREATE SCHEMA IF NOT EXISTS :"role";
GRANT USAGE, CREATE ON SCHEMA :"role" TO :"role";
