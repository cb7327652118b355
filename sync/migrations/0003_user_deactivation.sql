-- The users page (sync/user_views.py): a deactivated user (deactivated_at set) cannot log
-- in at central, and laptops pull it with "active": false and no password hash, so it
-- cannot log in there either; users are never deleted (laps name them). last_login_at is
-- central's own and never synced.
ALTER TABLE app_user ADD COLUMN IF NOT EXISTS deactivated_at bigint;
ALTER TABLE app_user ADD COLUMN IF NOT EXISTS last_login_at bigint;
