-- Clock jumps laptops reported with their pushes (sync/clock_jumps.py; see schema.sql).
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
