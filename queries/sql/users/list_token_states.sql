-- What every API worker keeps in memory to refuse revoked tokens without a query
-- per request: whether each user is active, and which version their tokens carry.
SELECT user_id, is_active, token_version
  FROM myapi.users;
