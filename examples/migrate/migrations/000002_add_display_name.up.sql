alter table accounts add column display_name text not null default '';
update accounts set display_name = split_part(email, '@', 1);
create index accounts_display_name on accounts (display_name);
