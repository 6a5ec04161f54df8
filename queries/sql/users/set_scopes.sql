-- Replace what the user may do. Taking any scope away also revokes every
-- token issued so far (they carry the old scopes); adding scopes leaves them,
-- and the user logs in again to use the new ones. The user's row, or no row
-- when there is no such user.
--   :user_id  the user's id (integer)
--   :scopes   the scopes (text[]; in psql \set scopes '{movies:read}')
UPDATE myapi.users
   SET scopes = :'scopes',
       tokens_valid_after = CASE
           WHEN scopes <@ :'scopes'::text[] THEN tokens_valid_after ELSE now() END,
       token_version = token_version + CASE
           WHEN scopes <@ :'scopes'::text[] THEN 0 ELSE 1 END
 WHERE user_id = :user_id
RETURNING user_id, email, name, password_hash, is_active, scopes, created_at,
       token_version;
