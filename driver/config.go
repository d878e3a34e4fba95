package driver

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/lib/pq"
	"github.com/pgentra/pgentra/internal/clouds"
	"github.com/pgentra/pgentra/internal/dsn"
)

// Keys of the connection string that belong to pgentra. They are
// removed before lib/pq sees the string.
const (
	keyCredential        = "azure_credential"
	keyClientID          = "azure_client_id"
	keyObjectID          = "azure_object_id"
	keyResourceID        = "azure_resource_id"
	keyTenantID          = "azure_tenant_id"
	keyCertificatePath   = "azure_client_certificate_path"
	keyFederatedToken    = "azure_federated_token_file"
	keyScope             = "azure_scope"
	keyRefreshMargin     = "azure_refresh_margin"
	keyAllowInsecureTLS  = "azure_allow_insecure_tls"
	defaultRefreshMargin = 5 * time.Minute
)

// dsnScopes are the scopes azure_scope accepts: the database resources of
// Azure's clouds. Whoever writes a connection string chooses the
// host the token is sent to, so it must not be able to ask for a token of
// another resource (Resource Manager, Key Vault, Graph) and send it there:
// a custom scope takes code (WithTokenCache with a token.Cache of that scope).
var dsnScopes = clouds.Scopes()

var knownKeys = []string{
	keyAllowInsecureTLS, keyCertificatePath, keyClientID, keyCredential, keyFederatedToken,
	keyObjectID, keyRefreshMargin, keyResourceID, keyScope, keyTenantID,
}

// Credential kinds accepted by azure_credential.
const (
	credDefault           = "default"
	credManagedIdentity   = "managed_identity"
	credWorkloadIdentity  = "workload_identity"
	credClientSecret      = "client_secret"
	credClientCertificate = "client_certificate"
	credEnvironment       = "environment"
	credAzureCLI          = "azure_cli"
	credAzureDeveloperCLI = "azure_developer_cli"
)

var credentialKinds = []string{
	credDefault, credManagedIdentity, credWorkloadIdentity, credClientSecret,
	credClientCertificate, credEnvironment, credAzureCLI, credAzureDeveloperCLI,
}

// Azure Service Connector's variables for Go apps (App Service, Container
// Apps, Functions, AKS). Used when the DSN is empty.
const (
	envConnectionString = "AZURE_POSTGRESQL_CONNECTIONSTRING"
	envSCClientID       = "AZURE_POSTGRESQL_CLIENTID"
	envSCClientSecret   = "AZURE_POSTGRESQL_CLIENTSECRET"
	envSCTenantID       = "AZURE_POSTGRESQL_TENANTID"
	envClientSecret     = "AZURE_CLIENT_SECRET"
	envCertPassword     = "AZURE_CLIENT_CERTIFICATE_PASSWORD"
)

// settings is pgentra's part of a connection string, validated.
type settings struct {
	credential         string
	clientID           string
	objectID           string
	resourceID         string
	tenantID           string
	certificatePath    string
	federatedTokenFile string
	scope              string // "" = derive from host
	refreshMargin      time.Duration
	allowInsecureTLS   bool
	// clientSecretEnv names the variable holding the client secret: secrets
	// never live in the DSN.
	clientSecretEnv string
}

// parsedDSN is a connection string as pq parsed it, with pgentra's keys
// taken out and validated.
type parsedDSN struct {
	// cfg is pq.NewConfig's result without the azure_* keys: what pq will
	// dial and send, before the TLS policy and the token are applied.
	cfg pq.Config
	// userGiven: the user came from the DSN, PGUSER or a service file (and
	// is not empty), not from pq's fallback to the OS user.
	userGiven bool
	settings  settings
	// serviceConnector: the string came from AZURE_POSTGRESQL_CONNECTIONSTRING
	// (the DSN was empty).
	serviceConnector bool
}

// parseDSN parses name with pq (Service Connector's connection string when
// name is empty), takes out and validates every azure_* key, and refuses a
// password written in the DSN. getenv is os.Getenv in production; pq itself
// always reads the real environment (PG* variables) and the service file.
// The DSN's own keys are never replaced or extended by them: a service file
// giving a key the DSN gives, or a comma list in PGHOST, PGHOSTADDR or
// PGPORT beside the DSN's host, hostaddr or port, is refused (dsn.Parse);
// what the DSN leaves out may come from either, as in libpq.
func parseDSN(name string, getenv func(string) string) (parsedDSN, error) {
	serviceConnector := false
	if strings.TrimSpace(name) == "" {
		if cs := getenv(envConnectionString); cs != "" {
			name, serviceConnector = cs, true
		}
	}
	p, err := dsn.Parse(name)
	var dup *dsn.DuplicateKeyError
	if errors.As(err, &dup) {
		return parsedDSN{}, configErr(dup.Key, "", "given %d times (as %s); any spelling of an azure_ key is pgentra's, give each once",
			len(dup.Spellings), quoteList(dup.Spellings))
	}
	if err != nil {
		return parsedDSN{}, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	if p.PasswordInDSN {
		return parsedDSN{}, configErr("password", "", "must not be set: pgentra supplies an Entra access token as the password; remove it from the DSN")
	}
	s, err := parseSettings(p.Azure)
	if err != nil {
		return parsedDSN{}, err
	}
	if serviceConnector {
		applyServiceConnector(&s, p.Azure, getenv)
	}
	return parsedDSN{cfg: p.Config, userGiven: p.UserGiven, settings: s, serviceConnector: serviceConnector}, nil
}

func parseSettings(kv map[string]string) (settings, error) {
	s := settings{credential: credDefault, refreshMargin: defaultRefreshMargin, clientSecretEnv: envClientSecret}
	for _, k := range dsn.SortedKeys(kv) {
		v := kv[k]
		switch k {
		case keyCredential:
			v = strings.ToLower(strings.TrimSpace(v))
			if !slices.Contains(credentialKinds, v) {
				return settings{}, configErr(k, v, "unknown credential; accepted: %s", quoteList(credentialKinds))
			}
			s.credential = v
		case keyClientID:
			s.clientID = v
		case keyObjectID:
			s.objectID = v
		case keyResourceID:
			s.resourceID = v
		case keyTenantID:
			s.tenantID = v
		case keyCertificatePath:
			s.certificatePath = v
		case keyFederatedToken:
			s.federatedTokenFile = v
		case keyScope:
			i := slices.IndexFunc(dsnScopes, func(sc string) bool { return strings.EqualFold(sc, v) })
			if i < 0 {
				return settings{}, configErr(k, v, "accepted: %s (a database scope; a token for any other resource "+
					"would be handed to whatever host the connection string names — for a custom scope, build it in code: "+
					"WithTokenCache(token.NewCache(cred, scope)))", quoteList(dsnScopes))
			}
			s.scope = dsnScopes[i]
		case keyRefreshMargin:
			d, err := time.ParseDuration(v)
			if err != nil || d < 0 || d > 12*time.Hour {
				return settings{}, configErr(k, v, `want a Go duration between 0s and 12h, such as "5m"`)
			}
			s.refreshMargin = d
		case keyAllowInsecureTLS:
			b, err := strconv.ParseBool(v)
			if err != nil {
				return settings{}, configErr(k, v, `want "true" or "false"`)
			}
			s.allowInsecureTLS = b
		default:
			return settings{}, configErr(k, "", "unknown key; pgentra's keys are %s", strings.Join(knownKeys, ", "))
		}
	}
	n := 0
	for _, v := range []string{s.clientID, s.objectID, s.resourceID} {
		if v != "" {
			n++
		}
	}
	if n > 1 {
		return settings{}, configErr(keyClientID, "", "set only one of azure_client_id, azure_object_id, azure_resource_id")
	}
	if (s.objectID != "" || s.resourceID != "") && s.credential != credManagedIdentity && s.credential != credDefault {
		return settings{}, configErr(keyObjectID, "", "azure_object_id and azure_resource_id name a managed identity; they need azure_credential=managed_identity")
	}
	return s, nil
}

// applyServiceConnector fills settings from AZURE_POSTGRESQL_* variables,
// unless the connection string's own azure_* keys say otherwise.
func applyServiceConnector(s *settings, given map[string]string, getenv func(string) string) {
	id, secret, tenant := getenv(envSCClientID), getenv(envSCClientSecret), getenv(envSCTenantID)
	if _, ok := given[keyClientID]; !ok && id != "" {
		s.clientID = id
	}
	if _, ok := given[keyTenantID]; !ok && tenant != "" {
		s.tenantID = tenant
	}
	if _, ok := given[keyCredential]; ok {
		return
	}
	switch {
	case secret != "" && id != "" && tenant != "":
		s.credential, s.clientSecretEnv = credClientSecret, envSCClientSecret
	case id != "":
		s.credential = credManagedIdentity
	}
}
