-- One file is sent as one simple query: several statements are fine and
-- PostgreSQL runs them in one implicit transaction.
create table accounts (
	id         bigserial primary key,
	email      text not null unique,
	created_by text not null default current_user
);
insert into accounts (email) values ('ops@example.com');
