-- Users central's admin deactivated (a pulled user with "active": false): they cannot log
-- in here, and their sessions ended when the pull arrived. A pull with "active": true
-- (central reactivated them) removes the row. Users are never deleted: laps name them.
CREATE TABLE IF NOT EXISTS inactive_user (
    user_id TEXT PRIMARY KEY REFERENCES user(id),
    since   INTEGER NOT NULL                     -- this laptop's clock when it was pulled
);
