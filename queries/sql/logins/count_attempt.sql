-- Count one login attempt against the account and the client address, before
-- the password is checked, so parallel guesses cannot slip past the limit.
-- A window older than :window_seconds starts again at 1. Returns both keys
-- with their count in the current window and the seconds until it ends.
-- (succeeded.sql takes a successful attempt back off the counts.)
--   :account         'account:' || the normalised e-mail (text)
--   :address         'address:' || the client's IP address (text)
--   :window_seconds  length of the window in seconds (integer)
INSERT INTO myapi.login_attempts AS a (key, failures, window_started)
VALUES (:'account', 1, now()), (:'address', 1, now())
    ON CONFLICT (key) DO UPDATE
   SET failures = CASE
           WHEN a.window_started > now() - make_interval(secs => :window_seconds)
           THEN a.failures + 1 ELSE 1 END,
       window_started = CASE
           WHEN a.window_started > now() - make_interval(secs => :window_seconds)
           THEN a.window_started ELSE now() END
RETURNING key,
          failures,
          ceil(extract(epoch FROM
              window_started + make_interval(secs => :window_seconds) - now()))::integer
              AS retry_after;
