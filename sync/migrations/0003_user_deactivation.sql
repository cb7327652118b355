-- The users page (sync/user_views.py): when an admin deactivated a user, and when each user
-- last logged in at central (see schema.sql). IF NOT EXISTS: a database made by code between
-- the users page and this migration has the columns already.
ALTER TABLE app_user ADD COLUMN IF NOT EXISTS deactivated_at bigint;
ALTER TABLE app_user ADD COLUMN IF NOT EXISTS last_login_at bigint;
