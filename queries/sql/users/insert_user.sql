-- A new user; fails with a unique violation on users_email_key when the
-- e-mail exists in any letter case.
--   :email          the e-mail address (text)
--   :name           display name (text)
--   :password_hash  bcrypt hash of the password (text)
--   :scopes         what the user may do, e.g. {movies:read} (text[]; in psql
--                   \set scopes '{movies:read}')
INSERT INTO myapi.users (email, name, password_hash, scopes)
VALUES (:'email', :'name', :'password_hash', :'scopes')
RETURNING user_id, email, name, password_hash, is_active, scopes, created_at,
       token_version;
