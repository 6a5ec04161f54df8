-- Enable or disable a user. Disabling also revokes every token issued so far,
-- so enabling the user again does not bring old tokens back. The user's row,
-- or no row when there is no such user.
--   :user_id    the user's id (integer)
--   :is_active  true to enable, false to disable (boolean)
UPDATE myapi.users
   SET is_active = :is_active,
       tokens_valid_after = CASE WHEN :is_active THEN tokens_valid_after ELSE now() END,
       token_version = token_version + CASE WHEN :is_active THEN 0 ELSE 1 END
 WHERE user_id = :user_id
RETURNING user_id, email, name, password_hash, is_active, scopes, created_at,
       token_version;
