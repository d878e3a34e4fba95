// Package entra is an offline stand-in for Microsoft Entra ID and the Azure
// managed-identity endpoints, for tests only. Nothing here talks to Azure.
//
// A [Tenant] owns a signing key, a clock and a directory of principals and
// mints RS256 v1 access tokens shaped like Azure's (see claims.md). Real
// azidentity credentials reach it through:
//
//   - [IdentityServer]: IMDS and App Service managed-identity endpoints over
//     plain HTTP. ManagedIdentityCredential reaches IMDS through
//     ClientOptions.Transport = srv.Transport() (it rewrites
//     http://169.254.169.254 to the server), and App Service through the
//     environment variables of [IdentityServer.AppServiceEnv].
//   - [Authority]: the Entra token authority over TLS for
//     ClientSecretCredential, WorkloadIdentityCredential and
//     DefaultAzureCredential; use [Authority.ClientOptions].
//   - [FakeAZ]: an `az` executable for AzureCLICredential.
//
// Managed identity tokens are cached by MSAL process-wide, keyed only by the
// identity (client/object/resource ID, or one shared key for "system
// assigned") and the resource — not by endpoint or tenant. MSAL caches only
// tokens that live longer than 5 minutes, so the default token lifetime here
// ([DefaultTokenLifetime]) is shorter than that: tests that raise it for a
// system-assigned identity may get another test's (another tenant's) token.
package entra
