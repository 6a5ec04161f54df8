-- A session-private staging table for a bulk load: COPY fills it, then
-- upsert_staged / insert_staged move its rows into myapi.movies in the same
-- transaction. Dropped automatically at commit.
CREATE TEMPORARY TABLE movies_staging (
    line            integer NOT NULL,
    movie_id        integer,
    title           text     NOT NULL,
    released        smallint NOT NULL,
    rating          numeric(3, 1) NOT NULL,
    votes           integer,
    length_minutes  integer,
    budget          bigint,
    mpaa            text,
    genres          text[]   NOT NULL
) ON COMMIT DROP;
