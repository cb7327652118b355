-- The event central counts for (sync/events.py): every pull names it, a laptop names it
-- in its pushes, and starting the next event gives a new one. Made once, here.
INSERT INTO meta (key, value)
VALUES ('event_id', substr(md5(random()::text || clock_timestamp()::text), 1, 24))
ON CONFLICT (key) DO NOTHING;
