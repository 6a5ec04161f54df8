-- One page of users in user_id order, after the user :after_id (0 for the
-- first page); at most :lim rows. The caller asks for one more row than it
-- shows to learn whether another page follows.
--   :after_id  the last user_id of the previous page (integer)
--   :lim       how many rows (integer)
SELECT user_id, email, name, password_hash, is_active, scopes, created_at,
       token_version
  FROM myapi.users
 WHERE user_id > :after_id
 ORDER BY user_id
 LIMIT :lim;
