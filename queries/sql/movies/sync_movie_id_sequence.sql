-- After rows were inserted with explicit ids, move the id generator past the
-- largest id so later inserts without an id do not collide.
SELECT setval(pg_get_serial_sequence('myapi.movies', 'movie_id'),
              COALESCE((SELECT max(movie_id) FROM myapi.movies), 0) + 1,
              false);
