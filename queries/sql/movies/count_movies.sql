-- How many movies there are.
SELECT count(*) FROM myapi.movies;
