-- A successful login: the account's count starts again, and the attempt is
-- taken back off the address's count (only failures count against it).
--   :account  'account:' || the normalised e-mail (text)
--   :address  'address:' || the client's IP address (text)
WITH account AS (
    DELETE FROM myapi.login_attempts WHERE key = :'account'
)
UPDATE myapi.login_attempts
   SET failures = greatest(failures - 1, 0)
 WHERE key = :'address';
