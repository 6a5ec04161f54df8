-- Movies released in or after a year with at least a rating, newest first
-- (ties: best rated, then id), from the table-valued function
-- myapi.movies_released_since.
--   :year        first year to include (integer)
--   :min_rating  lowest rating to include (0 to 10)
--   :lim         at most this many rows (integer)
SELECT movie_id, title, released, rating, votes, length_minutes, budget, mpaa, genres
  FROM myapi.movies_released_since(:year, :min_rating)
 ORDER BY released DESC, rating DESC, movie_id
 LIMIT :lim;
