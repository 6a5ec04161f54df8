-- Forget login attempts whose window ended; they no longer count.
--   :window_seconds  length of the window in seconds (integer)
DELETE FROM myapi.login_attempts
 WHERE window_started < now() - make_interval(secs => :window_seconds);
