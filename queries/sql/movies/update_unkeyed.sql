-- Staged rows without an id (a plain CSV of title, released, rating) update
-- the movie with the same title and year when there is one. Columns the file
-- does not have (NULL here) keep their stored values.
-- Reads movies_staging: in psql, run it after create_staging.sql in one
-- transaction (psql -1 -f create_staging.sql ... -f update_unkeyed.sql).
UPDATE myapi.movies AS m
   SET rating = s.rating,
       votes = COALESCE(s.votes, m.votes),
       length_minutes = COALESCE(s.length_minutes, m.length_minutes),
       budget = COALESCE(s.budget, m.budget),
       mpaa = COALESCE(s.mpaa, m.mpaa),
       genres = CASE WHEN cardinality(s.genres) > 0 THEN s.genres ELSE m.genres END
  FROM movies_staging AS s
 WHERE s.movie_id IS NULL
   AND m.title = s.title
   AND m.released = s.released
   AND (m.rating, m.votes, m.length_minutes, m.budget, m.mpaa, m.genres)
       IS DISTINCT FROM
       (s.rating, COALESCE(s.votes, m.votes), COALESCE(s.length_minutes, m.length_minutes),
        COALESCE(s.budget, m.budget), COALESCE(s.mpaa, m.mpaa),
        CASE WHEN cardinality(s.genres) > 0 THEN s.genres ELSE m.genres END);
