package entra

import (
	"slices"
	"strings"
	"testing"
)

func TestGroups(t *testing.T) {
	t.Parallel()
	tn := newTenant(t)
	u := must(tn.AddUser("carol@contoso.com"))(t)
	sp := must(tn.AddServicePrincipal("Orders API"))(t)
	mi := must(tn.AddUserAssignedIdentity("id-orders"))(t)
	g := must(tn.AddGroup("pg-readers", u, sp, u))(t)

	if g.Kind != Group || g.Type() != "group" || g.Kind.String() != "Group" || !isGUID(g.ObjectID) || g.AppID != "" || g.IsManagedIdentity() {
		t.Fatalf("group = %#v (type %q)", g, g.Type())
	}
	if got, ok := tn.ByName("PG-READERS"); !ok || got != g {
		t.Error("ByName does not return the group as added (Principal must stay comparable)")
	}
	oids := func() []string {
		var out []string
		for _, p := range must(tn.GroupMembers(g))(t) {
			out = append(out, p.ObjectID)
		}
		return out
	}
	if got, want := oids(), []string{u.ObjectID, sp.ObjectID}; !slices.Equal(got, want) {
		t.Fatalf("members = %v, want %v (duplicates dropped)", got, want)
	}
	if err := tn.AddGroupMember(g, mi); err != nil {
		t.Fatal(err)
	}
	if err := tn.AddGroupMember(g, mi); err != nil {
		t.Fatalf("adding a member twice: %v", err)
	}
	if err := tn.RemoveGroupMember(g, sp); err != nil {
		t.Fatal(err)
	}
	if got, want := oids(), []string{u.ObjectID, mi.ObjectID}; !slices.Equal(got, want) {
		t.Fatalf("members after add/remove = %v, want %v", got, want)
	}

	// No tokens, by any route.
	if _, _, err := tn.Mint(g, DatabaseScope, 0); err == nil || !strings.Contains(err.Error(), "no tokens for groups") {
		t.Errorf("Mint for a group: %v, want an error naming the group", err)
	}
	if _, err := InstallFakeAZ(t.TempDir(), tn, g); err == nil {
		t.Error("InstallFakeAZ accepted a group")
	}
	if _, err := tn.WriteFederatedTokenFile(t.TempDir(), g); err == nil {
		t.Error("WriteFederatedTokenFile accepted a group")
	}
	if _, err := tn.WriteClientCertificate(t.TempDir(), g); err == nil {
		t.Error("WriteClientCertificate accepted a group")
	}
	if p, ok := tn.ByClientID(""); ok {
		t.Errorf("ByClientID(\"\") = %v: groups have no client ID", p)
	}
	srv := NewIdentityServer(tn, IdentityServerOptions{})
	t.Cleanup(srv.Close)
	if p, found, _ := srv.identityFor("", g.ObjectID, ""); found {
		t.Errorf("IMDS serves the group as a managed identity: %v", p)
	}

	// Invalid groups and memberships.
	other := must(NewTenant(TenantOptions{}))(t)
	stranger := must(other.AddUser("eve@fabrikam.com"))(t)
	for name, err := range map[string]error{
		"empty name":          second(tn.AddGroup(" ")),
		"duplicate name":      second(tn.AddGroup("Carol@Contoso.com")),
		"member of no tenant": second(tn.AddGroup("g1", stranger)),
		"nested group":        second(tn.AddGroup("g2", g)),
		"add nested group":    tn.AddGroupMember(g, g),
		"add to a non-group":  tn.AddGroupMember(u, sp),
		"add a stranger":      tn.AddGroupMember(g, stranger),
		"remove from a user":  tn.RemoveGroupMember(u, sp),
		"members of a user":   second(tn.GroupMembers(u)),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if _, ok := tn.ByName("g1"); ok {
		t.Error("a failed AddGroup left the group in the tenant")
	}
}

func second[T any](_ T, err error) error { return err }
