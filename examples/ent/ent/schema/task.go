// Package schema holds the ent schema that `go generate ./ent` turns into
// the committed code in package ent.
package schema

import (
	"entgo.io/ent"
	"entgo.io/ent/schema/field"
)

// Task is one to-do item.
type Task struct {
	ent.Schema
}

// Fields of the Task.
func (Task) Fields() []ent.Field {
	return []ent.Field{
		field.String("title").NotEmpty().Unique(),
		field.Bool("done").Default(false),
	}
}
