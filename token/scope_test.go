package token

import "testing"

func TestScopeForHost(t *testing.T) {
	tests := []struct{ host, want string }{
		{"myserver.postgres.database.azure.com", ScopePublic},
		{"MyServer.Postgres.Database.Azure.COM.", ScopePublic},
		{"srv.postgres.database.chinacloudapi.cn", ScopeChina},
		{"SRV.POSTGRES.DATABASE.CHINACLOUDAPI.CN.", ScopeChina},
		{"srv.postgres.database.usgovcloudapi.net", ScopeUSGov},
		{"srv.postgres.database.usgovcloudapi.net.", ScopeUSGov},
		{"c-cluster.abc123.postgres.cosmos.azure.com", ScopeCosmos},
		{" c-cluster.abc123.postgres.cosmos.azure.com ", ScopeCosmos},
		{"postgres.database.chinacloudapi.cn", ScopePublic}, // no server label
		{"evil-postgres.database.chinacloudapi.cn.example.com", ScopePublic},
		{"xpostgres.database.chinacloudapi.cn", ScopePublic}, // not a whole label
		{"", ScopePublic},
		{".", ScopePublic},
		{"localhost", ScopePublic},
		{"127.0.0.1", ScopePublic},
		{"::1", ScopePublic},
		{"/var/run/postgresql", ScopePublic},
		{"db.internal.contoso.com", ScopePublic},
	}
	for _, tt := range tests {
		if got := ScopeForHost(tt.host); got != tt.want {
			t.Errorf("ScopeForHost(%q) = %q, want %q", tt.host, got, tt.want)
		}
	}
}
