drop index accounts_display_name;
alter table accounts drop column display_name;
