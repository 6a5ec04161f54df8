-- The user with this e-mail, compared without regard to letter case; no row
-- when there is none. Uses the unique index on lower(email).
--   :email  the e-mail address (text)
SELECT user_id, email, name, password_hash, is_active, scopes, created_at,
       token_version
  FROM myapi.users
 WHERE lower(email) = lower(:'email');
