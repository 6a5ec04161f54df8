-- What every API worker keeps in memory to refuse revoked tokens without a query
-- per request: whether each user is active, and since when their tokens count.
SELECT user_id, is_active, tokens_valid_after
  FROM myapi.users;
