"""Split a migration into statements exactly as the Supabase CLI does.

`supabase db push` runs a file's statements one by one and records them, as
split, in supabase_migrations.schema_migrations.statements. `recsys-exp
migrate` writes the same records, so each tool recognises what the other
applied, and the tests can run a file statement by statement the CLI's way.

This is the CLI's tokenizer (pkg/parser: a small state machine over quotes,
dollar quotes, comments, escapes, parentheses and BEGIN ATOMIC bodies),
followed by its trim: trailing semicolons, then surrounding white space;
empty statements are dropped. Comments before a statement stay with it.
"""

from __future__ import annotations

from dataclasses import dataclass

# A state gets the next character and the statement read so far (ending with
# that character); it returns the next state, or None to end the statement.


def _is_identifier_char(ch: str) -> bool:
    return ch.isalpha() or ch.isdigit() or ch in "_$"


def _is_begin_atomic(data: str) -> bool:
    """`data` ends with the keyword pair BEGIN <white space> ATOMIC."""
    word = "ATOMIC"
    if len(data) < len(word) or data[-len(word) :].upper() != word:
        return False
    head = data[: -len(word)]
    if head and _is_identifier_char(head[-1]):
        return False
    prefix = head.rstrip()
    if len(prefix) < len("BEGIN") or prefix[-5:].upper() != "BEGIN":
        return False
    return len(prefix) == 5 or not _is_identifier_char(prefix[-6])


class State:
    def next(self, ch: str, data: str) -> State | None:
        raise NotImplementedError


class Ready(State):
    def next(self, ch: str, data: str) -> State | None:
        if ch == "$":
            return Tag(len(data) - 1)
        if ch in "'\"":
            return Quote(ch)
        if ch == "-":
            return Comment()
        if ch == "/":
            return Block()
        if ch == "\\":
            return Escape()
        if ch == ";":
            return None
        if ch == "(":
            return Atomic(self, ")")
        if ch in "cC" and _is_begin_atomic(data):
            return Atomic(self, "END")
        return self


class Comment(State):
    """After one `-`: a second one opens a line comment."""

    def next(self, ch: str, data: str) -> State | None:
        if ch == "-":
            return Dollar("\n")  # nothing is escaped in a comment
        return Ready().next(ch, data)


@dataclass
class Block(State):
    depth: int = 0

    def next(self, ch: str, data: str) -> State | None:
        window = data[-2:]
        if window == "/*":
            self.depth += 1
            return self
        if self.depth == 0:
            return Ready().next(ch, data)
        if window == "*/":
            self.depth -= 1
            if self.depth == 0:
                return Ready()
        return self


@dataclass
class Quote(State):
    delimiter: str
    escape: bool = False

    def next(self, ch: str, data: str) -> State | None:
        if self.escape:
            if ch == self.delimiter:  # a doubled quote stays inside
                self.escape = False
                return self
            return Ready().next(ch, data)
        if ch == self.delimiter:
            self.escape = True
        return self


@dataclass
class Dollar(State):
    delimiter: str

    def next(self, ch: str, data: str) -> State | None:
        if data.endswith(self.delimiter):
            return Ready()
        return self


@dataclass
class Tag(State):
    offset: int

    def next(self, ch: str, data: str) -> State | None:
        if ch == "$":
            return Dollar(data[self.offset :])
        if ch.isalpha() or ch.isdigit() or ch == "_":
            return self
        return Ready().next(ch, data)


class Escape(State):
    def next(self, ch: str, data: str) -> State | None:
        return Ready()


@dataclass
class Atomic(State):
    prev: State
    delimiter: str

    def next(self, ch: str, data: str) -> State | None:
        current = self.prev.next(ch, data)
        if current is not None:
            self.prev = current
        if isinstance(self.prev, Ready) and data[-len(self.delimiter) :].upper() == self.delimiter.upper():
            return Ready()
        return self


def split(text: str) -> list[str]:
    """The statements of `text`, each as the CLI records it."""
    tokens = []
    state: State = Ready()
    start = 0
    for i, ch in enumerate(text):
        following = state.next(ch, text[start : i + 1])
        if following is None:
            tokens.append(text[start : i + 1])
            start = i + 1
            state = Ready()
        else:
            state = following
    tokens.append(text[start:])
    trimmed = (token.rstrip(";").strip() for token in tokens)
    return [t for t in trimmed if t]
