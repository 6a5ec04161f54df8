"""Bad input: every malformed parameter is a precise 4xx problem, never a 500.

One table, input -> exact status, problem code and the field the detail names. The
requests change nothing, so the whole module shares one app and database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
import pytest
import pytest_asyncio

from tests.api import _support
from tests.api._support import PASSWORD, SharedApp, assert_problem

shared_app = pytest_asyncio.fixture(scope="module", loop_scope="module")(_support.shared_app)
pytestmark = pytest.mark.asyncio(loop_scope="module")

VALIDATION = "validation_error"
INVALID_REQUEST = "invalid_request"  # RFC 6749 section 5.2, on POST /token


@dataclass(frozen=True)
class Case:
    id: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    status: int = 422
    code: str = VALIDATION
    names: str | None = None  # what the problem's detail must mention
    method: str = "GET"
    form: dict[str, str] | None = None


def _get(
    id_: str,
    path: str,
    status: int = 422,
    code: str = VALIDATION,
    names: str | None = None,
    **params: str,
) -> Case:
    return Case(id_, path, dict(params), status, code, names)


def _token(id_: str, form: dict[str, str], status: int, code: str, names: str | None) -> Case:
    return Case(id_, "/token", {}, status, code, names, method="POST", form=form)


CASES: list[Case] = [
    # GET /movies/{movie_id}
    _get("id-not-integer", "/movies/abc", names="movie_id"),
    _get("id-float", "/movies/1.5", names="movie_id"),
    _get("id-blank", "/movies/%20", names="movie_id"),
    _get("id-zero", "/movies/0", names="movie_id"),
    _get("id-negative", "/movies/-1", names="movie_id"),
    _get("id-2^31", f"/movies/{2**31}", names="movie_id"),
    _get("id-huge", "/movies/" + "9" * 40, names="movie_id"),
    _get("id-max-int4-absent", f"/movies/{2**31 - 1}", 404, "movie_not_found"),
    # limit
    _get("limit-negative", "/movies", names="limit", limit="-1"),
    _get("limit-zero", "/movies", names="limit", limit="0"),
    _get("limit-101", "/movies", names="limit", limit="101"),
    _get("limit-huge", "/movies", names="limit", limit="1" + "0" * 30),
    _get("limit-float", "/movies", names="limit", limit="1.5"),
    _get("limit-text", "/movies", names="limit", limit="abc"),
    _get("top-limit-zero", "/movies/top", names="limit", limit="0"),
    _get("top-limit-101", "/movies/top", names="limit", limit="101"),
    _get("since-limit-101", "/movies/released-since", names="limit", year="2000", limit="101"),
    _get("since-limit-negative", "/movies/released-since", names="limit", year="2000", limit="-5"),
    # sort
    _get("sort-unknown", "/movies", names="'foo'", sort="foo"),
    _get("sort-unknown-second", "/movies", names="'foo'", sort="rating,foo"),
    _get("sort-unknown-descending", "/movies", names="'-foo'", sort="-foo"),
    _get("sort-wrong-case", "/movies", names="'RATING'", sort="RATING"),
    _get("sort-plus", "/movies", names="'+rating'", sort="+rating"),
    _get("sort-empty", "/movies", names="empty sort field", sort=""),
    _get("sort-only-minus", "/movies", names="'-'", sort="-"),
    _get("sort-empty-part", "/movies", names="empty sort field", sort="rating,,title"),
    _get("sort-repeated", "/movies", names="appears twice", sort="rating,-rating"),
    _get("sort-sql", "/movies", names="'title;DROP TABLE x'", sort="title;DROP TABLE x"),
    _get("sort-too-long", "/movies", names="sort", sort="title," * 20),
    # ratings
    _get("min-rating-negative", "/movies", names="min_rating", min_rating="-1"),
    _get("min-rating-11", "/movies", names="min_rating", min_rating="11"),
    _get("min-rating-10.5", "/movies", names="min_rating", min_rating="10.5"),
    _get("min-rating-nan", "/movies", names="min_rating", min_rating="NaN"),
    _get("min-rating-inf", "/movies", names="min_rating", min_rating="inf"),
    _get("min-rating-minus-inf", "/movies", names="min_rating", min_rating="-Infinity"),
    _get("min-rating-text", "/movies", names="min_rating", min_rating="abc"),
    _get("min-rating-3-decimals", "/movies", names="min_rating", min_rating="9.995"),
    _get("min-rating-1e400", "/movies", names="min_rating", min_rating="1e400"),
    _get("min-rating-empty", "/movies", names="min_rating", min_rating=""),
    _get(
        "since-rating-11",
        "/movies/released-since",
        names="min_rating",
        year="2000",
        min_rating="11",
    ),
    _get(
        "since-rating-nan",
        "/movies/released-since",
        names="min_rating",
        year="2000",
        min_rating="NaN",
    ),
    _get(
        "since-rating-minus-1",
        "/movies/released-since",
        names="min_rating",
        year="2000",
        min_rating="-1",
    ),
    # title
    _get("title-nul", "/movies", names="title", title="\x00"),
    _get("title-inner-nul", "/movies", names="title", title="a\x00b"),
    _get("title-10kB", "/movies", names="title", title="x" * 10_240),
    _get("title-201", "/movies", names="title", title="y" * 201),
    _get("title-empty", "/movies", names="title", title=""),
    # years
    _get("released-from-text", "/movies", names="released_from", released_from="abc"),
    _get("released-to-text", "/movies", names="released_to", released_to="abc"),
    _get("released-from-negative", "/movies", names="released_from", released_from="-1"),
    _get("released-from-10000", "/movies", names="released_from", released_from="10000"),
    _get("released-to-float", "/movies", names="released_to", released_to="1999.5"),
    _get("released-from-huge", "/movies", names="released_from", released_from="9" * 30),
    _get("since-year-missing", "/movies/released-since", names="year"),
    _get("since-year-text", "/movies/released-since", names="year", year="abc"),
    _get("since-year-negative", "/movies/released-since", names="year", year="-1"),
    _get("since-year-10000", "/movies/released-since", names="year", year="10000"),
    _get("top-min-votes-negative", "/movies/top", names="min_votes", min_votes="-1"),
    _get("top-min-votes-2^31", "/movies/top", names="min_votes", min_votes=str(2**31)),
    _get("top-min-votes-text", "/movies/top", names="min_votes", min_votes="many"),
    # cursor: over the length cap is a validation error; forged ones are 400 (test_movies)
    _get("cursor-too-long", "/movies", names="cursor", cursor="A" * 2001),
    # routes and methods
    _get("unknown-route", "/nope", 404, "not_found"),
    _get("unknown-movies-route", "/movies/top/extra", 404, "not_found"),
    Case("post-movies", "/movies", status=405, code="method_not_allowed", method="POST", form={}),
    # POST /token form fields
    _token("token-no-fields", {}, 400, INVALID_REQUEST, "username"),
    _token(
        "token-no-password", {"username": "shared@example.com"}, 400, INVALID_REQUEST, "password"
    ),
    _token("token-no-username", {"password": PASSWORD}, 400, INVALID_REQUEST, "username"),
    _token(
        "token-empty-fields", {"username": "", "password": ""}, 400, INVALID_REQUEST, "password"
    ),
    _token(
        "token-wrong-grant-type",
        {
            "grant_type": "client_credentials",
            "username": "shared@example.com",
            "password": PASSWORD,
        },
        400,
        "unsupported_grant_type",
        "grant_type",
    ),
    _token(
        "token-10kB-username",
        {"username": "u" * 10_240, "password": PASSWORD},
        400,
        "invalid_grant",
        None,
    ),
    _token(
        "token-10kB-password",
        {"username": "shared@example.com", "password": "p" * 10_240},
        400,
        "invalid_grant",
        None,
    ),
    _token(
        "token-nul-in-password",
        {"username": "shared@example.com", "password": "a\x00b"},
        400,
        "invalid_grant",
        None,
    ),
    # A NUL cannot be stored in PostgreSQL text: it is no user, like any unknown e-mail.
    _token(
        "token-nul-in-username",
        {"username": "a\x00b@example.com", "password": PASSWORD},
        400,
        "invalid_grant",
        None,
    ),
]


assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
async def test_bad_input_is_a_precise_problem(shared_app: SharedApp, case: Case) -> None:
    client = shared_app.client
    if case.method == "GET":
        response = await client.get(case.path, params=case.params, headers=shared_app.bearer)
    else:
        response = await client.post(case.path, data=case.form, headers=shared_app.bearer)
    body = assert_problem(response, case.status, case.code)
    if case.names is not None:
        assert case.names in body["detail"], body
    if case.status == 422 and case.code == VALIDATION and "errors" in body:
        # Where and why, never the input itself.
        assert all(set(e) == {"loc", "msg", "type"} for e in body["errors"])
    if case.form:
        for value in case.form.values():
            if len(value) > 8:
                assert value not in response.text


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/movies", {"limit": "1"}),
        ("/movies", {"limit": "100"}),
        ("/movies", {"min_rating": "0"}),
        ("/movies", {"min_rating": "10"}),
        ("/movies", {"min_rating": "9.99"}),
        ("/movies", {"title": "y" * 200}),
        ("/movies", {"released_from": "0", "released_to": "9999"}),
        ("/movies", {"cursor": ""}),
        ("/movies/top", {"min_votes": "0", "limit": "1"}),
        ("/movies/top", {"min_votes": str(2**31 - 1), "limit": "100"}),
        ("/movies/released-since", {"year": "0", "min_rating": "10", "limit": "1"}),
        ("/movies/released-since", {"year": "9999", "min_rating": "0"}),
        (f"/movies/{1}", {}),
    ],
)
async def test_boundary_values_are_accepted(
    shared_app: SharedApp, path: str, params: dict[str, str]
) -> None:
    response = await shared_app.client.get(path, params=params, headers=shared_app.bearer)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("params", "names"),
    [
        ({"min_ratting": "8"}, "'min_ratting'"),
        ({"budget": "5", "genre": "Drama"}, "'budget', 'genre'"),
    ],
)
async def test_unknown_query_parameter_is_422_naming_it(
    client: httpx.AsyncClient, bearer: dict[str, str], params: dict[str, str], names: str
) -> None:
    response = await client.get("/movies", params=params, headers=bearer)
    body = assert_problem(response, 422, "validation_error")
    assert body["detail"].startswith(f"unknown query parameter {names}; allowed: cursor, limit")
    assert [e["loc"][1] for e in body["errors"]] == sorted(params)
