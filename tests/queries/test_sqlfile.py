"""Tests for the .sql file tokenizer that turns :name parameters into asyncpg's $n."""

from __future__ import annotations

import copy

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from queries._sqlfile import ScannedSql, SqlFileError, scan, top_level_words

_SETTINGS = settings(max_examples=150, deadline=None, database=None)

SCAN_CASES: list[tuple[str, str, str, tuple[str, ...]]] = [
    # (id, file text, expected sql, expected params)
    (
        "same-name-same-number",
        "SELECT (released / :bucket) * :bucket AS b FROM movies\n"
        "GROUP BY (released / :bucket) * :bucket",
        "SELECT (released / $1) * $1 AS b FROM movies\nGROUP BY (released / $1) * $1",
        ("bucket",),
    ),
    ("first-appearance-order", "SELECT :b, :a, :b, :c", "SELECT $1, $2, $1, $3", ("b", "a", "c")),
    ("param-then-cast", "WHERE year > :since::int", "WHERE year > $1::int", ("since",)),
    ("plain-cast", "SELECT x::text", "SELECT x::text", ()),
    ("cast-to-quoted-type", 'SELECT x::"my:type", :a', 'SELECT x::"my:type", $1', ("a",)),
    ("string-with-colon", "SELECT 'a:b'", "SELECT 'a:b'", ()),
    ("string-doubled-quote", "SELECT 'it''s :x', :y", "SELECT 'it''s :x', $1", ("y",)),
    (
        "typed-literal",
        "SELECT interval '1:30', '10:00'::time",
        "SELECT interval '1:30', '10:00'::time",
        (),
    ),
    ("e-string-backslash-quote", r"SELECT E'\' :x', :y", r"SELECT E'\' :x', $1", ("y",)),
    ("lower-e-string", r"SELECT e'\\', :y, e'\' :x'", r"SELECT e'\\', $1, e'\' :x'", ("y",)),
    ("e-string-doubled-quote", "SELECT E'it''s :x'", "SELECT E'it''s :x'", ()),
    ("e-as-column", "SELECT e, :y FROM t", "SELECT e, $1 FROM t", ("y",)),
    ("identifier-ending-in-e", r"SELECT name'\' , :y", r"SELECT name'\' , $1", ("y",)),
    ("unicode-string", r"SELECT U&'d\0061t :x', :y", r"SELECT U&'d\0061t :x', $1", ("y",)),
    ("bit-hex-national", "SELECT B'1:0', X':x', N':x'", "SELECT B'1:0', X':x', N':x'", ()),
    ("dollar-quote", "SELECT $$ :x $$, :y", "SELECT $$ :x $$, $1", ("y",)),
    ("tagged-dollar-quote", "SELECT $fn$ :x $fn$ :y", "SELECT $fn$ :x $fn$ $1", ("y",)),
    (
        "nested-dollar-tags",
        "SELECT $a$ $b$ :x $b$ $a$, :y",
        "SELECT $a$ $b$ :x $b$ $a$, $1",
        ("y",),
    ),
    ("positional-in-dollar-body", "SELECT $$ $1 ; $$", "SELECT $$ $1 ; $$", ()),
    ("dollar-inside-identifier", "SELECT a$1, b$c$ FROM t", "SELECT a$1, b$c$ FROM t", ()),
    ("quoted-identifier", 'SELECT "a:b", :y', 'SELECT "a:b", $1', ("y",)),
    ("quoted-identifier-escape", 'SELECT "say ""hi"" :x"', 'SELECT "say ""hi"" :x"', ()),
    ("line-comment", "SELECT 1 -- :x\n, :y", "SELECT 1 -- :x\n, $1", ("y",)),
    ("line-comment-cr", "SELECT 1 -- :x\r, :y", "SELECT 1 -- :x\r, $1", ("y",)),
    ("nested-block-comment", "SELECT /* /* :x */ :y */ :z", "SELECT /* /* :x */ :y */ $1", ("z",)),
    ("slash-star-slash", "SELECT /*/ :x */ :y", "SELECT /*/ :x */ $1", ("y",)),
    ("empty-block-comment", "SELECT /**/:a", "SELECT /**/$1", ("a",)),
    ("arithmetic", "SELECT 1-:a/:b*:c", "SELECT 1-$1/$2*$3", ("a", "b", "c")),
    ("slice-numbers", "SELECT a[1:2], :y", "SELECT a[1:2], $1", ("y",)),
    ("slice-open-start", "SELECT a[:n]", "SELECT a[:n]", ()),
    ("slice-columns", "SELECT a[lo:hi][1:2]", "SELECT a[lo:hi][1:2]", ()),
    ("slice-cast-bound", "SELECT a[x::int:y]", "SELECT a[x::int:y]", ()),
    ("array-constructor", "SELECT ARRAY[:a, :b]", "SELECT ARRAY[$1, $2]", ("a", "b")),
    (
        "slice-inside-array",
        "SELECT array /* c */ [a[1:n], :v]",
        "SELECT array /* c */ [a[1:n], $1]",
        ("v",),
    ),
    ("named-argument", "SELECT f(a := :v, b => :w)", "SELECT f(a := $1, b => $2)", ("v", "w")),
    ("psql-quoted-param", "WHERE title = :'title'", "WHERE title = $1", ("title",)),
    ("psql-quoted-and-bare", "SELECT :'t', :t", "SELECT $1, $1", ("t",)),
    ("colon-then-string", "SELECT :'not a name'", "SELECT :'not a name'", ()),
    ("trailing-semicolon", "SELECT :a;", "SELECT $1", ("a",)),
    (
        "trailing-comments",
        "SELECT :a; -- done\n/* bye; /* */ */\n\n",
        "SELECT $1",
        ("a",),
    ),
    ("semicolon-in-string", "SELECT ';' AS s, :a;", "SELECT ';' AS s, $1", ("a",)),
    ("semicolon-in-comment", "SELECT 1 -- a;b\n, :a", "SELECT 1 -- a;b\n, $1", ("a",)),
    ("comment-before-semicolon", "SELECT 1 -- note\n;", "SELECT 1 -- note", ()),
    ("whitespace", "\n  SELECT :a \t\n\n", "\n  SELECT $1", ("a",)),
    ("leading-comment", "-- header: :x\nSELECT :a", "-- header: :x\nSELECT $1", ("a",)),
    ("non-ascii-identifier", "SELECT ñame, :a FROM t", "SELECT ñame, $1 FROM t", ("a",)),
]


@pytest.mark.parametrize(
    ("text", "sql", "params"),
    [pytest.param(text, sql, params, id=case_id) for case_id, text, sql, params in SCAN_CASES],
)
def test_scan(text: str, sql: str, params: tuple[str, ...]) -> None:
    assert scan(text, "q.sql") == ScannedSql("q.sql", sql, params)


ERROR_CASES: list[tuple[str, str, str, int, int]] = [
    # (id, file text, message regex, line, column)
    ("two-statements", "SELECT 1; SELECT 2", r"only one statement.*line 1, column 9", 1, 11),
    ("statement-after-comment", "SELECT 1;\n-- ok\n  SELECT 2", r"only one statement", 3, 3),
    ("double-semicolon", "SELECT 1;;", r"only one statement", 1, 10),
    ("unterminated-comment-in-tail", "SELECT 1; /* x", r"unterminated /\* block", 1, 11),
    (
        "psql-identifier",
        'SELECT 1\nORDER BY :"col"',
        r':"col" is psql identifier.*whitelist',
        2,
        10,
    ),
    ("positional", "SELECT *\n  FROM t WHERE id = $1", r"positional parameter \$1.*:name", 2, 21),
    ("positional-multi-digit", "SELECT $12", r"positional parameter \$12", 1, 8),
    ("empty", "", r"empty statement", 1, 1),
    ("whitespace-only", "  \n\t\n", r"empty statement", 1, 1),
    ("comments-only", "-- nothing\n/* here */\n", r"empty statement", 1, 1),
    ("lone-semicolon", "-- x\n;", r"empty statement", 1, 1),
    ("unterminated-string", "SELECT 1,\n  'abc", r"unterminated string constant", 2, 3),
    ("unterminated-doubled", "SELECT 'it''s", r"unterminated string constant", 1, 8),
    ("unterminated-e-string", r"SELECT E'abc\'", r"unterminated string constant", 1, 9),
    (
        "unterminated-dollar",
        "SELECT $tag$ x $tag",
        r"unterminated dollar-quoted string \$tag\$",
        1,
        8,
    ),
    ("unterminated-identifier", 'SELECT "abc', r"unterminated quoted identifier", 1, 8),
    ("unterminated-block", "SELECT\n /* /* */ 1", r"unterminated /\* block comment", 2, 2),
    ("non-ascii-param", "SELECT :naïve", r"ASCII letters", 1, 8),
]


@pytest.mark.parametrize(
    ("text", "match", "line", "column"),
    [pytest.param(text, m, line, col, id=case_id) for case_id, text, m, line, col in ERROR_CASES],
)
def test_scan_errors(text: str, match: str, line: int, column: int) -> None:
    with pytest.raises(SqlFileError, match=match) as info:
        scan(text, "q.sql")
    err = info.value
    assert (err.source, err.line, err.column) == ("q.sql", line, column)
    assert str(err) == f"q.sql:{line}:{column}: {err.message}"


def test_error_is_value_error_and_copies() -> None:
    err = SqlFileError("a.sql", 2, 3, "boom")
    assert isinstance(err, ValueError)
    assert str(err) == "a.sql:2:3: boom"
    clone = copy.copy(err)
    assert (clone.source, clone.line, clone.column, clone.message) == ("a.sql", 2, 3, "boom")


def test_default_source() -> None:
    assert scan("SELECT 1").source == "<string>"
    with pytest.raises(SqlFileError, match=r"^<string>:1:1: empty"):
        scan("")


# Characters that matter to the lexer, mixed with arbitrary ones.
_CHARS = st.one_of(st.sampled_from(list(" :;'\"$\\-/*\n[]=apE_1é")), st.characters())
_TEXT = st.text(_CHARS, max_size=12)
_NO_COMMENT_DELIM = _TEXT.filter(lambda s: "/*" not in s and "*/" not in s)

_standard = st.tuples(st.sampled_from(["", "U&", "B", "X", "N", "n"]), _TEXT).map(
    lambda t: t[0] + "'" + t[1].replace("'", "''") + "'"
)
_extended_piece = st.one_of(
    _CHARS.filter(lambda c: c not in "'\\"),
    _CHARS.map(lambda c: "\\" + c),
    st.just("''"),
)
_extended = st.tuples(st.sampled_from("eE"), st.lists(_extended_piece, max_size=8)).map(
    lambda t: t[0] + "'" + "".join(t[1]) + "'"
)
_tag = st.one_of(st.just(""), st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,4}", fullmatch=True))


@st.composite
def _dollar_quoted(draw: st.DrawFn) -> str:
    delim = f"${draw(_tag)}$"
    body = draw(_TEXT)
    # The body must not close the quote early, not even with the closing delimiter's help.
    assume((body + delim).find(delim) == len(body))
    return delim + body + delim


_quoted_identifier = _TEXT.filter(bool).map(lambda s: '"' + s.replace('"', '""') + '"')
_line_comment = st.text(_CHARS.filter(lambda c: c not in "\n\r"), max_size=12).map(
    lambda s: "--" + s + "\n"
)
# Spaces around the pieces keep a '*' or '/' at a piece's edge from forming a delimiter.
_block_comment = st.recursive(
    _NO_COMMENT_DELIM.map(lambda s: f"/* {s} */"),
    lambda inner: st.tuples(_NO_COMMENT_DELIM, inner, _NO_COMMENT_DELIM).map(
        lambda t: f"/* {t[0]} {t[1]} {t[2]} */"
    ),
    max_leaves=4,
)
_OPAQUE = st.one_of(
    _standard, _extended, _dollar_quoted(), _quoted_identifier, _line_comment, _block_comment
)


@_SETTINGS
@given(_OPAQUE)
def test_opaque_token_is_unchanged(token: str) -> None:
    result = scan(f"SELECT {token}, :p")
    assert result.sql == f"SELECT {token}, $1"
    assert result.params == ("p",)


@_SETTINGS
@given(_OPAQUE)
def test_opaque_token_after_param(token: str) -> None:
    result = scan(f"SELECT :p,\n{token};\n-- trailing; :x\n")
    assert result.sql == f"SELECT $1,\n{token}".rstrip()
    assert result.params == ("p",)


_NAMES = st.sampled_from(["p", "q", "p_2", "Title"])
# (source text, parameter name or None for text that must come out unchanged)
_FRAGMENT = st.one_of(
    _OPAQUE.map(lambda s: (s, None)),
    _NAMES.map(lambda n: (f":{n}", n)),
    _NAMES.map(lambda n: (f":'{n}'", n)),
    st.sampled_from(["x::int", "a[1:n]", "a[:n]", "f(a := 1)", "ARRAY[1]", "(", ")", "-", "/"]).map(
        lambda s: (s, None)
    ),
)


def _expected(fragments: list[tuple[str, str | None]]) -> tuple[str, tuple[str, ...]]:
    numbers: dict[str, int] = {}
    pieces = ["SELECT"]
    for text, name in fragments:
        if name is None:
            pieces.append(text)
        else:
            pieces.append(f"${numbers.setdefault(name, len(numbers) + 1)}")
    return " ".join(pieces).rstrip(), tuple(numbers)


@_SETTINGS
@given(st.lists(_FRAGMENT, max_size=8), st.lists(st.one_of(_line_comment, _block_comment)))
def test_fragments_match_model(
    fragments: list[tuple[str, str | None]], trailing: list[str]
) -> None:
    text = " ".join(["SELECT", *(source for source, _ in fragments)])
    sql, params = _expected(fragments)
    assert scan(text) == ScannedSql("<string>", sql, params)
    assert scan(f"{text} ;{' '.join(trailing)}") == ScannedSql("<string>", sql, params)


@_SETTINGS
@given(st.lists(_FRAGMENT, max_size=6), st.sampled_from(["\n", " ", "-- c\n", "/* c */"]))
def test_second_statement_is_rejected(fragments: list[tuple[str, str | None]], gap: str) -> None:
    first = " ".join(["SELECT", *(source for source, _ in fragments)])
    text = f"{first};{gap}SELECT 2"
    with pytest.raises(SqlFileError, match="only one statement") as info:
        scan(text)
    offset = len(text) - len("SELECT 2")
    assert info.value.line == text.count("\n", 0, offset) + 1
    assert info.value.column == offset - text.rfind("\n", 0, offset)


def _scan_or_error(text: str) -> ScannedSql | SqlFileError:
    try:
        return scan(text)
    except SqlFileError as err:
        return err


@_SETTINGS
@given(st.text(_CHARS, max_size=40))
def test_arbitrary_text_scans_or_raises_sql_file_error(text: str) -> None:
    result = _scan_or_error(text)
    if isinstance(result, SqlFileError):
        assert 1 <= result.line <= text.count("\n") + 1
        assert 1 <= result.column <= len(text) + 1
    else:
        assert all(name.isidentifier() and name.isascii() for name in result.params)
        assert all(f"${n}" in result.sql for n in range(1, len(result.params) + 1))


# --- words outside parentheses ------------------------------------------------------------

TOP_LEVEL_CASES: list[tuple[str, str, set[str]]] = [
    # (id, statement, which of ORDER, LIMIT, OFFSET and FETCH are at the top level)
    ("plain-select", "SELECT a FROM t WHERE b > :b", set()),
    ("order-limit", "SELECT a FROM t ORDER BY a LIMIT 5", {"ORDER", "LIMIT"}),
    ("offset-fetch", "SELECT a FROM t OFFSET 5 FETCH FIRST 1 ROW ONLY", {"OFFSET", "FETCH"}),
    ("lower-case", "select a from t order by a limit :lim", {"ORDER", "LIMIT"}),
    ("subquery", "SELECT a FROM (SELECT a FROM t ORDER BY a LIMIT 5) AS s", set()),
    ("window", "SELECT row_number() OVER (ORDER BY a) FROM t", set()),
    ("aggregate-order", "SELECT string_agg(a, ',' ORDER BY a) FROM t", set()),
    ("cte", "WITH c AS (SELECT a FROM t LIMIT 1) SELECT a FROM c", set()),
    ("string", "SELECT 'ORDER BY a LIMIT 1' FROM t", set()),
    ("quoted-identifier", 'SELECT "limit", "order" FROM t', set()),
    ("comments", "SELECT a FROM t -- ORDER BY a\n/* LIMIT 1 */", set()),
    ("dollar-quote", "SELECT $$ LIMIT 1 $$ FROM t", set()),
    ("column-label", "SELECT a AS limit, b AS offset FROM t", set()),
    ("qualified-name", "SELECT t.order, t.fetch FROM t", set()),
    ("positional-parameters", "SELECT a FROM t WHERE a > $1 LIMIT $2", {"LIMIT"}),
    ("union", "SELECT a FROM t UNION ALL (SELECT a FROM u LIMIT 1) ORDER BY 1", {"ORDER"}),
    ("unbalanced-close", "SELECT a) FROM t LIMIT 1", {"LIMIT"}),
]
_ROW_WORDS = {"ORDER", "LIMIT", "OFFSET", "FETCH"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [(text, expected) for _, text, expected in TOP_LEVEL_CASES],
    ids=[case[0] for case in TOP_LEVEL_CASES],
)
def test_top_level_words(text: str, expected: set[str]) -> None:
    assert set(top_level_words(text)) & _ROW_WORDS == expected


def test_top_level_words_give_the_first_offset() -> None:
    text = "SELECT a FROM t ORDER BY (SELECT 1 LIMIT 1) LIMIT 5; -- LIMIT"
    words = top_level_words(text)
    assert words["ORDER"] == text.index("ORDER")
    assert words["LIMIT"] == text.rindex("LIMIT 5")
    assert list(words) == ["SELECT", "A", "FROM", "T", "ORDER", "BY", "LIMIT"]


def test_top_level_words_raise_like_scan() -> None:
    with pytest.raises(SqlFileError, match="unterminated string constant"):
        top_level_words("SELECT 'open")
    # A .sql file may not hold `$n`; a statement already rewritten is made of them.
    with pytest.raises(SqlFileError, match="positional parameter"):
        scan("SELECT $1")
