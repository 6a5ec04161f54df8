"""Swagger UI can log in: the OpenAPI document declares the password flow on /token."""

from __future__ import annotations

import httpx


async def test_openapi_declares_the_password_flow(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    flows = spec["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]
    assert flows["password"]["tokenUrl"] == "token"
    assert set(flows["password"]["scopes"]) == {"movies:read", "movies:write", "users:admin"}
    movie = spec["paths"]["/movies/{movie_id}"]["get"]
    assert movie["security"] == [{"OAuth2PasswordBearer": ["movies:read"]}]
    assert "security" not in spec["paths"]["/health"]["get"]


async def test_docs_page_and_its_oauth_redirect_are_served(client: httpx.AsyncClient) -> None:
    docs = await client.get("/docs")
    assert docs.status_code == 200
    assert "/openapi.json" in docs.text
    assert "oauth2RedirectUrl" in docs.text
    assert (await client.get("/docs/oauth2-redirect")).status_code == 200
