package entra

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Kind is the kind of an Entra principal; it decides the shape of its tokens.
type Kind int

const (
	// User is a human account signed in through the Azure CLI.
	User Kind = iota + 1
	// UserAssignedIdentity is a standalone managed identity resource.
	UserAssignedIdentity
	// SystemAssignedIdentity is the identity of one compute resource (VM, web app).
	SystemAssignedIdentity
	// ServicePrincipal is an app registration using a secret, certificate or
	// federated (workload identity) credential.
	ServicePrincipal
	// Group is an Entra security group: an object ID and direct members
	// ([Tenant.AddGroup]). Entra issues no tokens for a group; its members
	// log in to a group role with their own tokens.
	Group
)

// String names the kind for test output.
func (k Kind) String() string {
	switch k {
	case User:
		return "User"
	case UserAssignedIdentity:
		return "UserAssignedIdentity"
	case SystemAssignedIdentity:
		return "SystemAssignedIdentity"
	case ServicePrincipal:
		return "ServicePrincipal"
	case Group:
		return "Group"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// AzureCLIAppID is the client ID of the Azure CLI, the "appid" of user tokens
// obtained through `az`.
const AzureCLIAppID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"

// Principal is one identity in a [Tenant]'s directory. Values are copies: to
// change the directory use Tenant methods.
type Principal struct {
	Kind Kind
	// Name is the role name the PostgreSQL front registers: the UPN for
	// users, the resource name for managed identities (last ARM path
	// segment), the display name for service principals and groups.
	Name string
	// ObjectID is the "oid" (and, for apps, "sub") claim.
	ObjectID string
	// AppID is the client ID ("appid" claim). For users it is the Azure
	// CLI's; groups have none.
	AppID string
	// ResourceID is the ARM ID of a managed identity (user-assigned: the
	// identity; system-assigned: the compute resource); it becomes xms_mirid.
	ResourceID string
	// UPN is a user's sign-in name.
	UPN string
	// ClientSecret is a service principal's secret. Never printed by String.
	ClientSecret string
	// FederatedSubject is the "sub" a service principal's federated
	// credential accepts in a workload-identity assertion.
	FederatedSubject string
	// TokenLifetime overrides the tenant's default lifetime when positive.
	TokenLifetime time.Duration
	// certs are the client certificates registered by
	// [Tenant.WriteClientCertificate]. A pointer keeps Principal comparable;
	// the slice behind it is replaced on every registration, never changed.
	certs *[]clientCert
}

// Type returns the role type the PostgreSQL front records for the principal,
// as pgaadauth_create_principal does: "user" for users, "group" for groups,
// "service" for every application identity (managed identities and service
// principals).
func (p Principal) Type() string {
	switch p.Kind {
	case User:
		return "user"
	case Group:
		return "group"
	}
	return "service"
}

// IsManagedIdentity reports whether p is a system- or user-assigned identity.
func (p Principal) IsManagedIdentity() bool {
	return p.Kind == UserAssignedIdentity || p.Kind == SystemAssignedIdentity
}

// String describes p for test logs without its client secret.
func (p Principal) String() string {
	return fmt.Sprintf("%s %q (oid %s, appid %s)", p.Kind, p.Name, p.ObjectID, p.AppID)
}

// GoString keeps %#v from printing the client secret.
func (p Principal) GoString() string { return "entra.Principal{" + p.String() + "}" }

var resourceNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

func (t *Tenant) armID(provider, name string) string {
	return "/subscriptions/" + t.sub + "/resourcegroups/" + t.rg + "/providers/" + provider + "/" + name
}

// AddUserAssignedIdentity adds a user-assigned managed identity named name
// (an ARM resource name) with generated client and object IDs and the
// resource ID .../providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>.
func (t *Tenant) AddUserAssignedIdentity(name string) (Principal, error) {
	if !resourceNameRE.MatchString(name) {
		return Principal{}, fmt.Errorf("entra: invalid identity name %q", name)
	}
	return t.add(Principal{
		Kind: UserAssignedIdentity, Name: name, ObjectID: newGUID(), AppID: newGUID(),
		ResourceID: t.armID("Microsoft.ManagedIdentity/userAssignedIdentities", name),
	})
}

// AddSystemAssignedVM adds the system-assigned identity of a virtual machine;
// its resource ID ends in .../providers/Microsoft.Compute/virtualMachines/<vmName>.
func (t *Tenant) AddSystemAssignedVM(vmName string) (Principal, error) {
	if !resourceNameRE.MatchString(vmName) {
		return Principal{}, fmt.Errorf("entra: invalid VM name %q", vmName)
	}
	return t.add(Principal{
		Kind: SystemAssignedIdentity, Name: vmName, ObjectID: newGUID(), AppID: newGUID(),
		ResourceID: t.armID("Microsoft.Compute/virtualMachines", vmName),
	})
}

// AddSystemAssignedWebApp adds the system-assigned identity of an App Service
// app; its resource ID ends in .../providers/Microsoft.Web/sites/<appName>.
func (t *Tenant) AddSystemAssignedWebApp(appName string) (Principal, error) {
	if !resourceNameRE.MatchString(appName) {
		return Principal{}, fmt.Errorf("entra: invalid app name %q", appName)
	}
	return t.add(Principal{
		Kind: SystemAssignedIdentity, Name: appName, ObjectID: newGUID(), AppID: newGUID(),
		ResourceID: t.armID("Microsoft.Web/sites", appName),
	})
}

// AddUser adds a user whose UPN (and role name) is upn, e.g. "carol@contoso.com".
func (t *Tenant) AddUser(upn string) (Principal, error) {
	if at := strings.IndexByte(upn, '@'); at <= 0 || at == len(upn)-1 || strings.ContainsAny(upn, " \t\r\n'\"") {
		return Principal{}, fmt.Errorf("entra: invalid UPN %q", upn)
	}
	return t.add(Principal{Kind: User, Name: upn, ObjectID: newGUID(), AppID: AzureCLIAppID, UPN: upn})
}

// AddServicePrincipal adds an app registration with a generated client ID,
// client secret and federated subject "system:serviceaccount:default:<name>"
// (lower-cased, spaces → '-'), so it can authenticate by secret and by
// workload identity.
func (t *Tenant) AddServicePrincipal(displayName string) (Principal, error) {
	if strings.TrimSpace(displayName) == "" || strings.ContainsAny(displayName, "\r\n") {
		return Principal{}, fmt.Errorf("entra: invalid display name %q", displayName)
	}
	sa := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(displayName), " ", "-"))
	return t.add(Principal{
		Kind: ServicePrincipal, Name: displayName, ObjectID: newGUID(), AppID: newGUID(),
		ClientSecret:     "emu~" + randomToken(30),
		FederatedSubject: "system:serviceaccount:default:" + sa,
	})
}

func (t *Tenant) add(p Principal) (Principal, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.addLocked(p)
}

func (t *Tenant) addLocked(p Principal) (Principal, error) {
	if _, dup := t.findLocked(func(q Principal) bool { return strings.EqualFold(q.Name, p.Name) }); dup {
		return Principal{}, fmt.Errorf("entra: tenant already has a principal named %q", p.Name)
	}
	t.principals = append(t.principals, p)
	return p, nil
}

// SetPrincipalLifetime overrides the token lifetime of p (d <= 0 removes the
// override), e.g. to make one identity's tokens expire within seconds.
func (t *Tenant) SetPrincipalLifetime(p Principal, d time.Duration) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.principals {
		if t.principals[i].ObjectID == p.ObjectID {
			t.principals[i].TokenLifetime = max(d, 0)
			return nil
		}
	}
	return fmt.Errorf("entra: principal %q is not in tenant %s", p.Name, t.id)
}

func (t *Tenant) findLocked(match func(Principal) bool) (Principal, bool) {
	for _, p := range t.principals {
		if match(p) {
			return p, true
		}
	}
	return Principal{}, false
}

func (t *Tenant) find(match func(Principal) bool) (Principal, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.findLocked(match)
}

// ByName finds a principal by role name (case-insensitive).
func (t *Tenant) ByName(name string) (Principal, bool) {
	return t.find(func(p Principal) bool { return strings.EqualFold(p.Name, name) })
}

// ByClientID finds an application identity (not a user, not a group) by
// client ID.
func (t *Tenant) ByClientID(id string) (Principal, bool) {
	return t.find(func(p Principal) bool {
		return p.Kind != User && p.Kind != Group && p.AppID != "" && strings.EqualFold(p.AppID, id)
	})
}

// ByObjectID finds a principal by object ID.
func (t *Tenant) ByObjectID(id string) (Principal, bool) {
	return t.find(func(p Principal) bool { return strings.EqualFold(p.ObjectID, id) })
}

// ByResourceID finds a managed identity by ARM resource ID (case-insensitive,
// as ARM IDs are).
func (t *Tenant) ByResourceID(id string) (Principal, bool) {
	return t.find(func(p Principal) bool { return p.ResourceID != "" && strings.EqualFold(p.ResourceID, id) })
}

// Principals returns a copy of the directory in insertion order, e.g. to seed
// the PostgreSQL front's role registry (Name, ObjectID, Type()).
func (t *Tenant) Principals() []Principal {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Principal(nil), t.principals...)
}

// firstSystemAssigned returns the first system-assigned identity added.
func (t *Tenant) firstSystemAssigned() (Principal, bool) {
	return t.find(func(p Principal) bool { return p.Kind == SystemAssignedIdentity })
}
