-- The failed logins counted against one key in its current window, and the
-- seconds until that window ends; no row when none count.
--   :key             'account:' || e-mail, or 'address:' || IP address (text)
--   :window_seconds  length of the window in seconds (integer)
SELECT key,
       failures,
       ceil(extract(epoch FROM
           window_started + make_interval(secs => :window_seconds) - now()))::integer
           AS retry_after
  FROM myapi.login_attempts
 WHERE key = :'key'
   AND window_started > now() - make_interval(secs => :window_seconds);
