-- A laptop's wall clock moved more than a minute against its boot clock (someone set it):
-- that laptop's lap times around the jump are suspect (the devices page and the review
-- queue say so). at is the laptop's clock right after the jump; the laptop's changes up
-- to after_seq were made before it. Reported once by id; a re-sent report is a no-op.
CREATE TABLE IF NOT EXISTS clock_jump (
    laptop_id   text NOT NULL,                          -- the laptop's device id (lap.device_id)
    id          text NOT NULL,
    device_id   bigint NOT NULL,                        -- the device (token) that reported it
    at          bigint NOT NULL,
    jump_ms     bigint NOT NULL,                        -- negative: the clock went back
    after_seq   bigint NOT NULL,
    received_at bigint NOT NULL,                        -- central clock
    PRIMARY KEY (laptop_id, id)
);
