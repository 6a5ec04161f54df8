-- A counted attempt answered without checking its password (too many logins, or the
-- server too busy): it guessed nothing, so it comes off both counts again. The
-- window is left as it is.
--   :account  the account's key, 'account:<e-mail>' (text)
--   :address  the client address's key, 'address:<ip>' (text)
UPDATE myapi.login_attempts
   SET failures = greatest(failures - 1, 0)
 WHERE key IN (:'account', :'address');
