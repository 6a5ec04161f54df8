"""The application factory: `create_app()` wires settings, the pool, routers and error handlers."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api import bootstrap
from api.backend.config import Settings, get_settings
from api.backend.database import Database, create_pool
from api.backend.signing import token_keys
from api.exc import DatabaseUnavailable, install_handlers
from api.routers import auth, health, movies, users
from api.routers._deps import Runtime
from api.services._cursor import cursor_key
from api.services.auth import Dummy, TokenVerifier, bcrypt_threads
from api.services.revocation import TokenStates
from api.services.throttle import Throttle
from queries._check import check_queries, collect_declarations

logger = logging.getLogger(__name__)

DESCRIPTION = """
Real IMDb movie data (58,788 films, the ggplot2movies snapshot) behind an OAuth2-protected
REST API. Log in with **Authorize** (your e-mail as the username), then try the endpoints.
"""


async def _check_sql(db: Database) -> None:
    """Refuse to start when a statement does not fit its declaration; log the warnings."""
    catalog = collect_declarations()
    started = time.perf_counter()
    try:
        async with db.connection() as conn:
            findings = [*catalog.problems, *await check_queries(conn, catalog.declarations)]
    except DatabaseUnavailable:
        # The service starts without its database and answers 503 until it is back.
        logger.warning("SQL not checked at start-up: the database is not reachable")
        return
    elapsed = (time.perf_counter() - started) * 1000
    logger.info("checked %d statements in %.0f ms", len(catalog.declarations), elapsed)
    for finding in findings:
        log = logger.error if finding.severity == "error" else logger.warning
        log("%s", finding)
    errors = [str(f) for f in findings if f.severity == "error"]
    if errors:
        # Broken SQL fails on every request that reaches it: better no traffic at all.
        raise RuntimeError(
            "the SQL does not fit its declarations (api-admin check lists the same):\n"
            + "\n".join(errors)
        )


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new application; `settings` default to the environment's."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cfg = settings or get_settings()
        keys = token_keys(cfg)
        if cfg.embedded:
            # Run directly under uvicorn without `api-admin serve`: start the server here.
            dsn = await asyncio.to_thread(bootstrap.resolve_dsn, cfg)
            await bootstrap.prepare_database(dsn, cfg, seed=cfg.seed_on_start)
        else:
            dsn = bootstrap.resolve_dsn(cfg)
            if cfg.apply_schema_on_start:
                # `serve --reload`: a DBA's edit of schema.sql takes effect on save.
                await bootstrap.prepare_database(dsn, cfg, seed=False)
        db = Database(await create_pool(dsn, cfg), acquire_timeout=cfg.pool_acquire_timeout)
        try:
            await _check_sql(db)
            bcrypt_threads.configure(cfg.bcrypt_concurrency)
            dummy = await asyncio.to_thread(Dummy.for_rounds, cfg.bcrypt_rounds)
            listen_dsn = (
                cfg.listen_database_url.get_secret_value() if cfg.listen_database_url else dsn
            )
            tokens = TokenStates(db, listen_dsn, listen=cfg.token_notifications)
            await tokens.start()
            app.state.runtime = Runtime(
                settings=cfg,
                db=db,
                keys=keys,
                verifier=TokenVerifier(keys),
                dummy=dummy,
                cursor_key=cursor_key(keys.secret),
                tokens=tokens,
                throttle=Throttle(db, cfg),
            )
            # Everything built so far lives as long as the worker: move it out of the
            # collector's reach. Each full collection walked it all and found nothing
            # (25 to 50 ms, every few seconds under load: the p99 of GET /movies/{id}).
            gc.freeze()
            try:
                yield
            finally:
                # Collectable again, for a process that goes on (the tests build many apps).
                gc.unfreeze()
                await tokens.close()
        finally:
            await db.close()

    app = FastAPI(
        title="Movies API",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        swagger_ui_parameters={"persistAuthorization": True},
        # No redirect from /movies/ to /movies: Starlette builds it from the Host
        # header, which a client controls.
        redirect_slashes=False,
    )
    cors = (settings or get_settings()).cors_origins
    if cors:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cors,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    install_handlers(app)
    for router in (movies.router, users.router, auth.router, health.router):
        app.include_router(router)
    return app
