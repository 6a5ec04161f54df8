-- One movie by its id, or no row.
--   :movie_id  the movie's id (integer)
SELECT movie_id, title, released, rating, votes, length_minutes, budget, mpaa, genres
  FROM myapi.movies
 WHERE movie_id = :movie_id;
