-- Staged rows without an id whose title and year are new get a new id.
-- Reads movies_staging: in psql, run it after create_staging.sql in one
-- transaction (psql -1 -f create_staging.sql ... -f insert_unkeyed.sql).
INSERT INTO myapi.movies
       (title, released, rating, votes, length_minutes, budget, mpaa, genres)
SELECT s.title, s.released, s.rating, COALESCE(s.votes, 0), s.length_minutes, s.budget,
       s.mpaa, s.genres
  FROM movies_staging AS s
 WHERE s.movie_id IS NULL
   AND NOT EXISTS (
           SELECT 1 FROM myapi.movies AS m
            WHERE m.title = s.title AND m.released = s.released)
 ORDER BY s.line;
