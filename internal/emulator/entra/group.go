package entra

// Entra security groups: an object ID and a list of direct members. Only
// membership is emulated — no nested groups, no owners, no dynamic rules.

import (
	"fmt"
	"slices"
	"strings"
)

// AddGroup adds a security group named displayName (the name an Entra
// administrator passes to pgaadauth_create_principal) with a generated
// object ID and the given direct members, which must be users or
// application identities of the tenant (groups cannot be members: nested
// groups are not emulated). The group has no client ID and Entra mints no
// tokens for it: [Tenant.Mint] and every credential refuse it. Members log
// in to the group's role with their own tokens.
func (t *Tenant) AddGroup(displayName string, members ...Principal) (Principal, error) {
	if strings.TrimSpace(displayName) == "" || strings.ContainsAny(displayName, "\r\n") {
		return Principal{}, fmt.Errorf("entra: invalid group name %q", displayName)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	oids := make([]string, 0, len(members))
	for _, m := range members {
		cur, err := t.memberLocked(m)
		if err != nil {
			return Principal{}, fmt.Errorf("entra: adding group %q: %w", displayName, err)
		}
		if !slices.Contains(oids, cur.ObjectID) {
			oids = append(oids, cur.ObjectID)
		}
	}
	g, err := t.addLocked(Principal{Kind: Group, Name: displayName, ObjectID: newGUID()})
	if err != nil {
		return Principal{}, err
	}
	if t.members == nil {
		t.members = map[string][]string{}
	}
	t.members[g.ObjectID] = oids
	return g, nil
}

// AddGroupMember makes member a direct member of group. Adding a member
// twice is not an error. The PostgreSQL front learns of the change only when
// the group is registered again (emulator.Env.Register).
func (t *Tenant) AddGroupMember(group, member Principal) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, err := t.groupLocked(group)
	if err != nil {
		return err
	}
	m, err := t.memberLocked(member)
	if err != nil {
		return fmt.Errorf("entra: adding a member to group %q: %w", g.Name, err)
	}
	if !slices.Contains(t.members[g.ObjectID], m.ObjectID) {
		t.members[g.ObjectID] = append(slices.Clip(t.members[g.ObjectID]), m.ObjectID)
	}
	return nil
}

// RemoveGroupMember removes member from group's direct members; removing a
// principal that is not a member is not an error. Like AddGroupMember, it
// reaches the PostgreSQL front when the group is registered again.
func (t *Tenant) RemoveGroupMember(group, member Principal) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, err := t.groupLocked(group)
	if err != nil {
		return err
	}
	t.members[g.ObjectID] = slices.DeleteFunc(slices.Clone(t.members[g.ObjectID]), func(oid string) bool {
		return strings.EqualFold(oid, member.ObjectID)
	})
	return nil
}

// GroupMembers returns the current direct members of group, in the order
// they were added.
func (t *Tenant) GroupMembers(group Principal) ([]Principal, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g, err := t.groupLocked(group)
	if err != nil {
		return nil, err
	}
	out := make([]Principal, 0, len(t.members[g.ObjectID]))
	for _, oid := range t.members[g.ObjectID] {
		if p, ok := t.findLocked(func(q Principal) bool { return q.ObjectID == oid }); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

// groupLocked returns the tenant's current copy of group, which must be a
// group of the tenant.
func (t *Tenant) groupLocked(group Principal) (Principal, error) {
	g, ok := t.findLocked(func(q Principal) bool { return group.ObjectID != "" && strings.EqualFold(q.ObjectID, group.ObjectID) })
	if !ok {
		return Principal{}, fmt.Errorf("entra: group %q is not in tenant %s", group.Name, t.id)
	}
	if g.Kind != Group {
		return Principal{}, fmt.Errorf("entra: %q is a %v, not a group", g.Name, g.Kind)
	}
	return g, nil
}

// memberLocked returns the tenant's current copy of m, which must be a
// principal of the tenant that can be a group member (not a group).
func (t *Tenant) memberLocked(m Principal) (Principal, error) {
	cur, ok := t.findLocked(func(q Principal) bool { return m.ObjectID != "" && strings.EqualFold(q.ObjectID, m.ObjectID) })
	if !ok {
		return Principal{}, fmt.Errorf("principal %q is not in tenant %s", m.Name, t.id)
	}
	if cur.Kind == Group {
		return Principal{}, fmt.Errorf("%q is a group; nested groups are not emulated", cur.Name)
	}
	return cur, nil
}
