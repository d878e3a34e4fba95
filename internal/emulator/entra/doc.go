// Package entra is an offline stand-in for Microsoft Entra ID and the Azure
// managed-identity endpoints, for tests only: nothing here talks to Azure,
// and production packages must not import it.
//
// A [Tenant] owns a signing key, a clock and a directory of principals and
// mints RS256 v1 access tokens shaped like Azure's.
// Real azidentity v1.15 credentials reach it as follows.
//
// Managed identity, IMDS ([IdentityServer]):
//
//	srv := entra.NewIdentityServer(tn, entra.IdentityServerOptions{})
//	cred, err := azidentity.NewManagedIdentityCredential(&azidentity.ManagedIdentityCredentialOptions{
//		ClientOptions: azcore.ClientOptions{
//			Transport: srv.Transport(), // rewrites http://169.254.169.254 to srv
//			Retry: policy.RetryOptions{MaxRetries: 3, RetryDelay: 10 * time.Millisecond, MaxRetryDelay: 100 * time.Millisecond},
//		},
//		ID: azidentity.ClientID(p.AppID), // or ObjectID, ResourceID; nil = system-assigned
//	})
//
// Without Retry, azidentity's IMDS retry policy (6 tries, 2 s doubling to
// 25 s) makes a failing endpoint take ~97 s. None of IDENTITY_ENDPOINT,
// IDENTITY_HEADER, MSI_ENDPOINT, IMDS_ENDPOINT may be set, or azidentity
// picks another source.
//
// Managed identity, App Service: t.Setenv every pair of
// [IdentityServer.AppServiceEnv] before NewManagedIdentityCredential; no
// Transport is needed (the endpoint is plain HTTP on loopback).
//
// Client secret, client certificate, workload identity ([Authority], TLS):
//
//	a := entra.NewAuthority(tn)
//	azidentity.NewClientSecretCredential(tn.ID(), sp.AppID, sp.ClientSecret,
//		&azidentity.ClientSecretCredentialOptions{ClientOptions: a.ClientOptions()})
//	pemPath, _ := tn.WriteClientCertificate(t.TempDir(), sp) // registered for sp
//	pemData, _ := os.ReadFile(pemPath)
//	certs, key, _ := azidentity.ParseCertificates(pemData, nil)
//	azidentity.NewClientCertificateCredential(tn.ID(), sp.AppID, certs, key,
//		&azidentity.ClientCertificateCredentialOptions{ClientOptions: a.ClientOptions()})
//	path, _ := tn.WriteFederatedTokenFile(t.TempDir(), sp)
//	azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
//		ClientOptions: a.ClientOptions(), ClientID: sp.AppID, TenantID: tn.ID(), TokenFilePath: path})
//
// DisableInstanceDiscovery may be true or false. DefaultAzureCredential
// reads AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE and
// AZURE_AUTHORITY_HOST (= a.URL()) from the environment, but the transport
// that trusts the test certificate must come from code:
// DefaultAzureCredentialOptions{ClientOptions: azcore.ClientOptions{Transport:
// a.Transport()}} (or [CombinedClientOptions] to reach IMDS too). Because
// the transport sends every host to the emulator, a credential left on the
// public cloud (login.microsoftonline.com) works too.
//
// Azure CLI ([FakeAZ]): InstallFakeAZ(dir, tn, user), prepend dir to PATH
// (t.Setenv), then azidentity.NewAzureCLICredential(nil or {TenantID: tn.ID()}).
// Azure Developer CLI ([FakeAZD]) the same way with InstallFakeAZD and
// azidentity.NewAzureDeveloperCLICredential; both fakes may share a dir.
//
// Groups ([Tenant.AddGroup]) have an object ID and direct members but no
// tokens: a member logs in to the group's PostgreSQL role (user = the
// group's name) with its own token, and the front checks the membership it
// was given when the group was registered (emulator.Env.Register).
//
// Caching traps. Tokens live as long as Azure's by default (managed
// identities 24 h, users and service principals 1 h). MSAL serves a cached
// token while it has more than 5 minutes left, so only with a short lifetime
// ([ShortTestLifetime], 2 minutes) does every GetToken reach the emulator.
// Managed-identity tokens that live longer are cached process-wide, keyed only by the identity
// (client/object/resource ID, or one shared key for every system-assigned
// identity) and the resource — not by endpoint or tenant — so a later test
// in the same binary may receive another tenant's token. Tests set
// managed-identity lifetimes under 5 minutes explicitly unless that is what
// the test is about.
package entra
