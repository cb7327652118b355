-- The language a mail was queued in (en, de; NULL for mails queued before). A class list
-- to a teacher is written anew with the figures of the moment it is sent
-- (sync/sponsors/class_lists.py), in the language the admin queued it in, whoever sends it.
ALTER TABLE mail_out ADD COLUMN IF NOT EXISTS locale text;
