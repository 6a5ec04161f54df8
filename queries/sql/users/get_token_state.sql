-- One user's token state (see list_token_states.sql), or no row when the user
-- does not exist.
--   :user_id  the user's id (integer)
SELECT user_id, is_active, token_version
  FROM myapi.users
 WHERE user_id = :user_id;
