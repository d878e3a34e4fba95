package clouds

import (
	"slices"
	"testing"
)

func TestForHost(t *testing.T) {
	tests := []struct {
		host, scope string
		ok          bool
	}{
		{"myserver.postgres.database.azure.com", ScopePublic, true},
		{"MyServer.Postgres.Database.Azure.COM.", ScopePublic, true},
		{"srv.postgres.database.chinacloudapi.cn", ScopeChina, true},
		{"srv.postgres.database.usgovcloudapi.net.", ScopeUSGov, true},
		{"c-cluster.abc123.postgres.cosmos.azure.com", ScopeCosmos, true},
		{"postgres.database.chinacloudapi.cn", ScopePublic, false}, // no server label
		{"xpostgres.database.chinacloudapi.cn", ScopePublic, false},
		{"evil.postgres.database.azure.com.example.com", ScopePublic, false},
		{" srv.postgres.database.azure.com", ScopePublic, true}, // spaces are the caller's to trim
		{"srv.postgres.database.azure.com ", ScopePublic, false},
		{"", ScopePublic, false},
		{"localhost", ScopePublic, false},
		{"127.0.0.1", ScopePublic, false},
	}
	for _, tt := range tests {
		c, ok := ForHost(tt.host)
		if c.Scope != tt.scope || ok != tt.ok {
			t.Errorf("ForHost(%q) = %q, %v; want %q, %v", tt.host, c.Scope, ok, tt.scope, tt.ok)
		}
	}
}

func TestForScope(t *testing.T) {
	tests := []struct{ scope, mgmt, authority string }{
		{ScopePublic, ManagementPublic, "https://login.microsoftonline.com/"},
		{ScopeChina, ManagementChina, "https://login.chinacloudapi.cn/"},
		{ScopeUSGov, ManagementUSGov, "https://login.microsoftonline.us/"},
		{ScopeCosmos, ManagementPublic, "https://login.microsoftonline.com/"},
		{"api://custom/.default", ManagementPublic, "https://login.microsoftonline.com/"},
		{"", ManagementPublic, "https://login.microsoftonline.com/"},
	}
	for _, tt := range tests {
		c := ForScope(tt.scope)
		if c.ManagementScope != tt.mgmt || c.Config().ActiveDirectoryAuthorityHost != tt.authority {
			t.Errorf("ForScope(%q) = management %q, authority %q; want %q, %q",
				tt.scope, c.ManagementScope, c.Config().ActiveDirectoryAuthorityHost, tt.mgmt, tt.authority)
		}
	}
}

func TestScopes(t *testing.T) {
	got := Scopes()
	want := []string{ScopePublic, ScopeChina, ScopeUSGov, ScopeCosmos}
	if !slices.Equal(got, want) {
		t.Fatalf("Scopes() = %q, want %q", got, want)
	}
	got[0] = "changed"
	if Scopes()[0] != ScopePublic {
		t.Error("Scopes() hands out the table's own storage")
	}
}
