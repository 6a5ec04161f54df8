"""Turn the named parameters of a one-statement .sql file into asyncpg's positional ones.

A single-pass tokenizer for PostgreSQL's lexical rules keeps literals, comments and casts intact;
it also tells which words a statement has outside parentheses (`top_level_words`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

# Regular expressions only classify the token at the cursor; the scan itself is one forward pass.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# PostgreSQL treats every non-ASCII character as a letter and allows '$' after the first one.
_IDENT = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*")
_IDENT_TAIL = re.compile(r"[$\x80-\U0010ffff]")
_DOLLAR_DELIM = re.compile(r"\$(?:[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_\x80-\U0010ffff]*)?\$")
_POSITIONAL = re.compile(r"\$[0-9]+")
_STANDARD_STOP = re.compile(r"'")
_EXTENDED_STOP = re.compile(r"['\\]")
_IDENT_STOP = re.compile(r'"')
_COMMENT_DELIM = re.compile(r"/\*|\*/")
_NEWLINE = re.compile(r"[\n\r]")
_WHITESPACE = frozenset(" \t\n\r\f\v")


class SqlFileError(ValueError):
    """A .sql file that cannot become one parametrized statement; str() is 'file:line:col: msg'."""

    def __init__(self, source: str, line: int, column: int, message: str) -> None:
        super().__init__(f"{source}:{line}:{column}: {message}")
        self.source = source
        self.line = line
        self.column = column
        self.message = message

    def __reduce__(self) -> tuple[type[SqlFileError], tuple[str, int, int, str]]:
        # The default reduce would call __init__ with the formatted string only.
        return (type(self), (self.source, self.line, self.column, self.message))


@dataclass(frozen=True, slots=True)
class ScannedSql:
    """One statement ready for asyncpg: ``params[0]`` is the name bound to ``$1``."""

    source: str
    sql: str
    params: tuple[str, ...]


def scan(text: str, source: str = "<string>") -> ScannedSql:
    """Rewrite ``:name`` and ``:'name'`` to ``$n``; raise SqlFileError on anything ambiguous."""
    return _Scanner(text, source).run()


def top_level_words(text: str) -> dict[str, int]:
    """Each word of the statement outside parentheses, literals and comments, upper-cased, with
    the 0-based offset of its first such use; ``:name`` and ``$n`` parameters are not words.

    A word after ``AS`` or ``.`` is a name (``AS limit``, ``t.order``), never a keyword,
    so it is left out. Raises SqlFileError like `scan`.
    """
    scanner = _Scanner(text, "<string>", positional=True)
    scanner.run()
    return scanner.words


class _Scanner:
    def __init__(self, text: str, source: str, *, positional: bool = False) -> None:
        self.text = text
        self.source = source
        # `$n` is an error in a file, but a statement already rewritten is made of them.
        self.positional = positional
        self.pos = 0
        self.copied = 0
        self.out: list[str] = []
        self.params: dict[str, int] = {}
        # One entry per open '[': True for a subscript, where ':' separates slice bounds.
        self.brackets: list[bool] = []
        self.prev_word = ""
        self.has_code = False
        self.depth = 0  # open parentheses
        self.words: dict[str, int] = {}

    def run(self) -> ScannedSql:
        end = self._statement()
        if not self.has_code:
            raise self._error(0, "empty statement: the file holds only whitespace and comments")
        if end < len(self.text):
            self._tail(end)
        self.out.append(self.text[self.copied : end])
        return ScannedSql(self.source, "".join(self.out).rstrip(), tuple(self.params))

    def _error(self, pos: int, message: str) -> SqlFileError:
        line = self.text.count("\n", 0, pos) + 1
        column = pos - self.text.rfind("\n", 0, pos)
        return SqlFileError(self.source, line, column, message)

    def _statement(self) -> int:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char == ";":
                return self.pos
            if char in _WHITESPACE:
                self.pos += 1
            elif not self._comment():
                self._token(char)
                self.has_code = True
        return len(text)

    def _tail(self, semicolon: int) -> None:
        self.pos = semicolon + 1
        while self.pos < len(self.text):
            if self.text[self.pos] in _WHITESPACE:
                self.pos += 1
            elif not self._comment():
                where = self._error(semicolon, "")
                raise self._error(
                    self.pos,
                    "only one statement per file: found more after the ';' at "
                    f"line {where.line}, column {where.column}",
                )

    def _token(self, char: str) -> None:
        handler = _HANDLERS.get(char)
        word = ""
        if handler is not None:
            handler(self)
        elif (match := _IDENT.match(self.text, self.pos)) is not None:
            word = self._word(match)
            if word and self.depth == 0 and self.prev_word not in ("AS", "."):
                self.words.setdefault(word, match.start())
        else:
            # Kept as a word: after `t.`, a keyword is a column name (see top_level_words).
            word = "." if char == "." else ""
            self.pos += 1
        # Whitespace and comments never reach here, so ARRAY /* c */ [ still counts as ARRAY[.
        self.prev_word = word

    def _word(self, match: re.Match[str]) -> str:
        self.pos = match.end()
        word = match.group()
        if word in ("e", "E") and self.text.startswith("'", self.pos):
            self._quoted(_EXTENDED_STOP, "string constant")
            return ""
        return word.upper()

    def _comment(self) -> bool:
        if self.text.startswith("--", self.pos):
            newline = _NEWLINE.search(self.text, self.pos)
            self.pos = len(self.text) if newline is None else newline.start()
            return True
        if self.text.startswith("/*", self.pos):
            self._block_comment()
            return True
        return False

    def _block_comment(self) -> None:
        depth = 0
        for delim in _COMMENT_DELIM.finditer(self.text, self.pos):
            depth += 1 if delim.group() == "/*" else -1
            if depth == 0:
                self.pos = delim.end()
                return
        raise self._error(self.pos, "unterminated /* block comment */ starting here")

    def _quoted(self, stops: re.Pattern[str], what: str) -> None:
        text = self.text
        start = self.pos
        quote = text[start]
        pos = start + 1
        while (stop := stops.search(text, pos)) is not None:
            pos = stop.end()
            # A backslash (E'' only) skips the next character; a doubled quote stands for one.
            if stop.group() == "\\" or text.startswith(quote, pos):
                pos += 1
            else:
                self.pos = pos
                return
        raise self._error(start, f"unterminated {what} starting here")

    def _standard_string(self) -> None:
        self._quoted(_STANDARD_STOP, "string constant")

    def _quoted_identifier(self) -> None:
        self._quoted(_IDENT_STOP, "quoted identifier")

    def _dollar(self) -> None:
        start = self.pos
        if (positional := _POSITIONAL.match(self.text, start)) is not None:
            if self.positional:
                self.pos = positional.end()
                return
            raise self._error(
                start,
                f"positional parameter {positional.group()} in a .sql file; "
                "use :name so the numbering stays consistent",
            )
        if (delim := _DOLLAR_DELIM.match(self.text, start)) is None:
            self.pos += 1
            return
        end = self.text.find(delim.group(), delim.end())
        if end < 0:
            raise self._error(
                start, f"unterminated dollar-quoted string {delim.group()} starting here"
            )
        self.pos = end + len(delim.group())

    def _open_bracket(self) -> None:
        # Inside ARRAY[...] a ':' can only start a parameter: a slice needs its own subscript.
        self.brackets.append(self.prev_word != "ARRAY")
        self.pos += 1

    def _close_bracket(self) -> None:
        if self.brackets:
            self.brackets.pop()
        self.pos += 1

    def _open_parenthesis(self) -> None:
        self.depth += 1
        self.pos += 1

    def _close_parenthesis(self) -> None:
        self.depth = max(0, self.depth - 1)
        self.pos += 1

    def _colon(self) -> None:
        start = self.pos
        after = self.text[start + 1 : start + 2]
        if after in (":", "="):
            # '::' is a cast and ':=' a named argument; consuming both keeps ':x' out of '::x'.
            self.pos += 2
            return
        if self.brackets and self.brackets[-1]:
            self.pos += 1
            return
        if after in ("'", '"'):
            self._quoted_param(start, after)
            return
        name = _NAME.match(self.text, start + 1)
        if name is None:
            self.pos += 1
            return
        if _IDENT_TAIL.match(self.text, name.end()) is not None:
            raise self._error(
                start, "parameter names may hold only ASCII letters, digits and underscores"
            )
        self._param(start, name.end(), name.group())

    def _quoted_param(self, start: int, quote: str) -> None:
        name = _NAME.match(self.text, start + 2)
        if name is None or not self.text.startswith(quote, name.end()):
            # Not psql's :'name' form: leave the ':' and let the quote lex normally.
            self.pos += 1
            return
        if quote == '"':
            raise self._error(
                start,
                f':"{name.group()}" is psql identifier interpolation, which cannot be a bind '
                "parameter; choose the identifier in Python from a whitelist instead",
            )
        self._param(start, name.end() + 1, name.group())

    def _param(self, start: int, end: int, name: str) -> None:
        number = self.params.setdefault(name, len(self.params) + 1)
        self.out.append(self.text[self.copied : start])
        self.out.append(f"${number}")
        self.copied = self.pos = end


_HANDLERS: dict[str, Callable[[_Scanner], None]] = {
    "'": _Scanner._standard_string,
    '"': _Scanner._quoted_identifier,
    "$": _Scanner._dollar,
    "[": _Scanner._open_bracket,
    "]": _Scanner._close_bracket,
    "(": _Scanner._open_parenthesis,
    ")": _Scanner._close_parenthesis,
    ":": _Scanner._colon,
}
