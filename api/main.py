"""The application factory: `create_app()` wires settings, the pool, routers and error handlers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from api import bootstrap
from api.backend.config import Settings, get_settings
from api.backend.database import Database, create_pool
from api.backend.signing import signing_secret
from api.exc import install_handlers
from api.routers import auth, health, movies, users
from api.routers._deps import Runtime
from api.services.auth import Dummy

logger = logging.getLogger(__name__)

DESCRIPTION = """
Real IMDb movie data (58,788 films, the ggplot2movies snapshot) behind an OAuth2-protected
REST API. Log in with **Authorize** (your e-mail as the username), then try the endpoints.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new application; `settings` default to the environment's."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        cfg = settings or get_settings()
        secret = signing_secret(cfg)
        if cfg.embedded:
            # Run directly under uvicorn without `api-admin serve`: start the server here.
            dsn = await asyncio.to_thread(bootstrap.resolve_dsn, cfg)
            await bootstrap.prepare_database(dsn, cfg, seed=cfg.seed_on_start)
        else:
            dsn = bootstrap.resolve_dsn(cfg)
        db = Database(await create_pool(dsn, cfg), acquire_timeout=cfg.pool_acquire_timeout)
        dummy = await asyncio.to_thread(Dummy.for_rounds, cfg.bcrypt_rounds)
        app.state.runtime = Runtime(settings=cfg, db=db, secret=secret, dummy=dummy)
        try:
            yield
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
    for router in (health.router, auth.router, users.router, movies.router):
        app.include_router(router)
    return app
