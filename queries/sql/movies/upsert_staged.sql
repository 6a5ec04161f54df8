-- Staged rows that carry an id (the IMDb file's row number, or a movie_id
-- column) replace the movie with that id, or are inserted. Unchanged rows are
-- left alone, so loading a file twice writes nothing the second time.
-- Reads movies_staging: in psql, run it after create_staging.sql in one
-- transaction (psql -1 -f create_staging.sql ... -f upsert_staged.sql).
INSERT INTO myapi.movies AS m
       (movie_id, title, released, rating, votes, length_minutes, budget, mpaa, genres)
SELECT movie_id, title, released, rating, COALESCE(votes, 0), length_minutes, budget, mpaa,
       genres
  FROM movies_staging
 WHERE movie_id IS NOT NULL
ON CONFLICT (movie_id) DO UPDATE
   SET title = EXCLUDED.title,
       released = EXCLUDED.released,
       rating = EXCLUDED.rating,
       votes = EXCLUDED.votes,
       length_minutes = EXCLUDED.length_minutes,
       budget = EXCLUDED.budget,
       mpaa = EXCLUDED.mpaa,
       genres = EXCLUDED.genres
 WHERE (m.title, m.released, m.rating, m.votes, m.length_minutes, m.budget, m.mpaa, m.genres)
       IS DISTINCT FROM
       (EXCLUDED.title, EXCLUDED.released, EXCLUDED.rating, EXCLUDED.votes,
        EXCLUDED.length_minutes, EXCLUDED.budget, EXCLUDED.mpaa, EXCLUDED.genres);
