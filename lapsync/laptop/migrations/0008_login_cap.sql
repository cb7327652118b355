-- A login now lasts 8 h after the helper's last action (user_session.valid_until, moved
-- on at most every few minutes: lapsync/laptop/logins.py), no longer 8 h after the login.
-- ends_at is the cap that an idle time renewed for ever cannot pass: 7 days after the
-- login. Both are times of this laptop's clock and move with a clock jump it notices.
-- A session of an earlier version gets its cap counted from its login (8 h before its end).
ALTER TABLE user_session ADD COLUMN ends_at INTEGER NOT NULL DEFAULT 0;
UPDATE user_session SET ends_at = valid_until - 8 * 3600 * 1000 + 7 * 24 * 3600 * 1000;
