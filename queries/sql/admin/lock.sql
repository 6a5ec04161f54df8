-- Wait for, then hold until the end of the transaction, the advisory lock named
-- :name, so that two processes starting at once do a piece of set-up one after
-- the other (schema, seeding).
--   :name  the lock's name (text)
SELECT pg_advisory_xact_lock(hashtext(:'name'));
