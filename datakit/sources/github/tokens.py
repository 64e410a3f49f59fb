"""A pool of GitHub tokens, rotated by remaining quota. Tokens are secrets: they live in this object only.

Tokens come from `GITHUB_TOKENS=t1,t2,…` (commas or whitespace between them; or another variable) or a file with one token per line. The pool is the
only place that sees them; everything that reports on a token says `token #i`, and `redact` removes any token
string from a text before it is logged or raised. A token GitHub refuses (401 Bad credentials) is `revoke`d: it is
never picked again, and a pool with no usable token left says so (`usable() == 0`).
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path


class NoTokens(ValueError):
    pass


@dataclass
class _Quota:
    remaining: int | None = None  # None: not known yet (treated as full)
    reset: float = 0.0  # epoch seconds when the quota refills


class TokenPool:
    def __init__(self, tokens: list[str]):
        tokens = [t.strip() for t in tokens if t and t.strip()]
        for i, token in enumerate(tokens):
            if not token.isascii() or not token.isprintable() or " " in token:
                # it could not travel in an HTTP header, and requests' error would quote it
                raise NoTokens(f"token #{i + 1}: holds whitespace or a control or non-ASCII character; give one "
                               "token per line (file) or t1,t2,… (variable)")
        if not tokens:
            raise NoTokens("no GitHub token: set GITHUB_TOKENS=t1,t2,… or pass a tokens file")
        self._tokens = list(dict.fromkeys(tokens))
        self._quota = [_Quota() for _ in self._tokens]
        self.revoked: set[int] = set()  # indices GitHub answered 401 for
        self.origin = "the token pool"  # where the tokens came from, for error messages (never the values)

    @classmethod
    def from_env(cls, env: str = "GITHUB_TOKENS", file: str | None = None) -> "TokenPool":
        if file:
            path = Path(file)
            if not path.is_file():
                raise NoTokens(f"tokens file {path} does not exist")
            lines = [ln.split("#", 1)[0] for ln in path.read_text(encoding="utf-8").splitlines()]
            pool = cls(lines)
            pool.origin = f"tokens file {path}"
            return pool
        value = os.environ.get(env, "")
        if not value.strip():
            raise NoTokens(f"no GitHub token: ${env} is empty (expected t1,t2,…)")
        # commas or any whitespace between tokens (a token holds neither): `GITHUB_TOKENS="$(cat tokens.txt)"` works
        pool = cls(re.split(r"[,\s]+", value))
        pool.origin = f"${env}"
        return pool

    def __len__(self) -> int:
        return len(self._tokens)

    def __repr__(self) -> str:
        return f"TokenPool({len(self._tokens)} tokens)"

    def token(self, index: int) -> str:
        return self._tokens[index]

    def pick(self, now: float | None = None) -> tuple[int, float]:
        """(the token with the most quota left, seconds to wait before using it: 0 unless every token is spent)."""
        now = time.time() if now is None else now
        live = [i for i in range(len(self._tokens)) if i not in self.revoked]
        if not live:
            raise LookupError("every token was revoked")  # callers check usable() first
        for i in live:
            q = self._quota[i]
            if q.remaining is not None and q.remaining <= 0 and q.reset <= now:
                q.remaining = None  # its window has reset
        usable = [i for i in live if self._quota[i].remaining is None or self._quota[i].remaining > 0]
        if usable:
            return max(usable, key=lambda i: (self._quota[i].remaining is None, self._quota[i].remaining or 0, -i)), 0.0
        soonest = min(live, key=lambda i: self._quota[i].reset)
        return soonest, max(0.0, self._quota[soonest].reset - now)

    def usable(self) -> int:
        """Tokens not revoked (spent ones count: they come back at their reset)."""
        return len(self._tokens) - len(self.revoked)

    def revoke(self, index: int) -> None:
        """GitHub refused this token (401): never use it again in this pool."""
        self.revoked.add(index)

    def names(self, indices) -> str:
        """`#1, #3`: how tokens are named in messages (1-based positions, never values)."""
        return ", ".join(f"#{i + 1}" for i in sorted(indices))

    def update(self, index: int, remaining: int | None, reset: float | None) -> None:
        """Record what the last response's X-RateLimit-Remaining / -Reset said about this token."""
        if remaining is not None:
            self._quota[index].remaining = remaining
        if reset is not None:
            self._quota[index].reset = reset

    def exhaust(self, index: int, reset: float) -> None:
        self._quota[index] = _Quota(remaining=0, reset=reset)

    def redact(self, text: str) -> str:
        for token in self._tokens:
            text = text.replace(token, "***")
        return text
