-- A queued letter, reminder or thank-you letter whose pledge's money changed after it was
-- queued (a payment recorded or deleted, the pledge edited or deleted, a frozen figure
-- decided) is withdrawn rather than sent with figures that are no longer true
-- (sync/sponsors/mail.py); the mail page lists it as such.
ALTER TABLE mail_out DROP CONSTRAINT IF EXISTS mail_out_status_check;
ALTER TABLE mail_out ADD CONSTRAINT mail_out_status_check
    CHECK (status IN ('queued', 'sent', 'failed', 'cancelled', 'withdrawn'));
