-- The user with this id, or no row.
--   :user_id  the user's id (integer)
SELECT user_id, email, name, password_hash, is_active, scopes, created_at,
       token_version
  FROM myapi.users
 WHERE user_id = :user_id;
