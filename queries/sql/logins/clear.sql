-- Forgive the failed logins counted against one key (an account unlocked by
-- an administrator).
--   :key  'account:' || e-mail, or 'address:' || IP address (text)
DELETE FROM myapi.login_attempts
 WHERE key = :'key';
