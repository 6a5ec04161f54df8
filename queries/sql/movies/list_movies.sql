-- Every movie: the base of GET /movies. The service adds the client's filters
-- (title contains, released from/to, minimum rating), the sort order and the
-- keyset page around this statement (see queries/movies.py), so keep it a plain
-- select of these columns with no ORDER BY or LIMIT.
SELECT movie_id, title, released, rating, votes, length_minutes, budget, mpaa, genres
  FROM myapi.movies;
