-- A new password hash for the user; every token issued so far stops
-- working. The user's row, or no row when there is no such user.
--   :user_id        the user's id (integer)
--   :password_hash  bcrypt hash of the new password (text)
UPDATE myapi.users
   SET password_hash = :'password_hash',
       tokens_valid_after = now(),
       token_version = token_version + 1
 WHERE user_id = :user_id
RETURNING user_id, email, name, password_hash, is_active, scopes, created_at,
       token_version;
