-- A session-private staging table for a bulk load: COPY fills it, then
-- upsert_staged, update_unkeyed and insert_unkeyed move its rows into
-- myapi.movies in the same transaction. Dropped automatically at commit, so in
-- psql run it and the statements that read it as one transaction:
--   psql -1 -f create_staging.sql -c "INSERT INTO movies_staging ..." -f upsert_staged.sql
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
