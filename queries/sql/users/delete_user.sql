-- Delete the user; their tokens stop working at once. The deleted row, or no
-- row when there was no such user.
--   :user_id  the user's id (integer)
DELETE FROM myapi.users
 WHERE user_id = :user_id
RETURNING user_id, email, name, password_hash, is_active, scopes, created_at,
       token_version;
