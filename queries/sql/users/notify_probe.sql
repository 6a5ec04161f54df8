-- A notification on the users channel whose payload is not a user id: each API
-- worker sends one at start and waits for it on its listening connection, to know
-- that notifications reach it (through PgBouncer in transaction mode they do not).
--   :payload  the probe's text (text)
SELECT pg_notify('myapi_users', :'payload');
