// Package pgfront is an offline stand-in for the login side of Azure Database for
// PostgreSQL with Microsoft Entra authentication.
//
// Azure checks the Entra access token only at login: the client sends it as a
// cleartext password over TLS, the server validates it and maps its oid to a role
// created with pgaadauth_create_principal. A Front does the same in front of a REAL
// PostgreSQL server: it speaks the wire protocol (jackc pgproto3) up to the password,
// validates the token (RS256 signature, aud, iss, tid, nbf, exp), looks the oid up in
// the registry that InstallAADAuth creates, and refuses with Azure's FATAL messages
// and SQLSTATEs (see the Msg* constants: Azure's own texts; where Azure's text for a
// check is unknown, its generic validation failure, with the emulator's diagnosis in
// Login.Reason). A role created for an Entra group accepts
// the token of any direct member of the group (DirectoryEntry.Members), as Flexible
// Server does: the member logs in with user = the group's name and its own token,
// and becomes the group role; with group sync on (SetGroupSync,
// pgaadauth_sync_roles_for_group_members) members also get roles of their own. On success it logs the mapped role in to the
// backend over its unix socket (trust) and relays bytes both ways, so everything after
// login (queries, COPY, LISTEN, cancellation) is the real server's behaviour.
//
// It records every password it receives (Passwords) and every login outcome (Logins)
// so tests can prove what a client did or did not send.
//
// This is test support. It is never imported by the driver or token packages.
package pgfront
