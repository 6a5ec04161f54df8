-- The best rated movies with enough votes, from the table-valued function
-- myapi.top_rated_movies: best rating first, ties by votes (more first), then id.
--   :min_votes  only movies with at least this many votes (integer)
--   :lim        at most this many rows (integer)
SELECT movie_id, title, released, rating, votes, length_minutes, budget, mpaa, genres
  FROM myapi.top_rated_movies(:min_votes, :lim)
 ORDER BY rating DESC, votes DESC, movie_id;
