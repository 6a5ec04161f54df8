"""The movies API: a FastAPI application over PostgreSQL through asyncpg."""
