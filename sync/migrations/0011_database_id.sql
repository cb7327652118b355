-- The identity of central's database (sync/identity.py): every pull and push answer names
-- it, and every restore renews it, so that laptops notice a restore whatever central's
-- change ids and seqs say. Made once, here; a restored dump older than this gets a new one.
INSERT INTO meta (key, value)
VALUES ('database_id', substr(md5(random()::text || clock_timestamp()::text), 1, 24))
ON CONFLICT (key) DO NOTHING;
