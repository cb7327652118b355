-- Users central's admin deactivated, as pulled (see schema.sql): they cannot log in here.
CREATE TABLE IF NOT EXISTS inactive_user (
    user_id TEXT PRIMARY KEY REFERENCES user(id),
    since   INTEGER NOT NULL                     -- this laptop's clock when it was pulled
);
