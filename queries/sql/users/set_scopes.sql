-- Replace what the user may do. Tokens already issued keep the scopes they
-- carry until they expire; revoke_tokens.sql ends them at once. The user's
-- row, or no row when there is no such user.
--   :user_id  the user's id (integer)
--   :scopes   the scopes (text[]; in psql \set scopes '{movies:read}')
UPDATE myapi.users
   SET scopes = :'scopes'
 WHERE user_id = :user_id
RETURNING user_id, email, name, password_hash, is_active, scopes, created_at;
