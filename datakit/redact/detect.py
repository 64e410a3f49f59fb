"""Find secrets and e-mail addresses in a text. Pure: a string in, `Finding`s out.

The detector is Yelp's detect-secrets (the plugin set BigCode's StarCoder PII pipeline also used for keys): its
regex plugins run over the whole text at once (their patterns do not cross lines, and one C-level scan of the
text beats a Python loop over its lines), and its `KeywordDetector` (secrets assigned to names like `password`,
`api_key`, `secret`, in the syntaxes of a dozen languages) runs on the lines that hold such a name. datakit adds
what detect-secrets 1.5 lacks or gets wrong for redaction:

- GitHub tokens: detect-secrets knows only the classic `ghp_…` family and reports the prefix group (`ghp`), not
  the token; here `gh[pousr]_…` and fine-grained `github_pat_…`, whole;
- Stripe keys: detect-secrets matches 24 characters of `sk_live_…` (today's keys are longer: the tail would leak);
  here live and test secret / restricted keys, whole;
- GCP API keys (`AIza…`), Azure `SharedAccessKey=` / SAS `sig=` keys, AWS secret keys assigned without quotes;
- private keys: detect-secrets flags the `BEGIN … PRIVATE KEY` line only; here every base64 run of the block's
  body, line by line (also inside a diff, where each line carries `+`/`-`/` `, and in one-line JSON with `\\n`
  escapes, as GCP service-account files hold them), so the block keeps its shape and its line count;
- secrets assigned to names detect-secrets' list lacks (`token`, `access_key`, `credential`, …);
- e-mail addresses (detect-secrets has no e-mail plugin).

Assigned secrets (`secret_assignment`) are kept only when the value looks like a key: ≥ 12 characters of one
token, two character classes, a digit or `+/=`, Shannon entropy ≥ 3 bits per character, not a name or a dotted
path, and past detect-secrets' own false-positive filters (UUIDs, sequences, `${templates}`, indirect references).
Documented examples are not secrets and are kept (`Finding.example`): values containing `EXAMPLE` (AWS's
`AKIAIOSFODNN7EXAMPLE`), values of ≤ 4 distinct characters (`ghp_xxxx…`), sequential strings, and addresses at
the reserved example domains (RFC 2606 / 6761: example.com|org|net, .example, .test, .invalid, .localhost).
Bare high-entropy strings (hashes, git shas, UUIDs, base64 test fixtures) are not secrets by themselves: only a
secret-looking name or a known key format makes one.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterator

__all__ = ["Finding", "KINDS", "find_secrets", "shannon_entropy"]

# Kinds, most specific first: a value several detectors report takes the first kind in this order.
KINDS = (
    "private_key", "github_token", "gitlab_token", "aws_access_key", "aws_secret_key", "gcp_api_key",
    "azure_storage_key", "azure_connection_key", "slack_token", "slack_webhook", "stripe_key", "openai_key",
    "sendgrid_key", "twilio_key", "npm_token", "pypi_token", "discord_token", "telegram_token", "mailchimp_key",
    "square_oauth_secret", "jwt", "url_password", "secret_assignment", "email",
)
_RANK = {k: i for i, k in enumerate(KINDS)}


@dataclass(frozen=True)
class Finding:
    kind: str
    value: str  # the exact characters to replace (never holds a newline)
    start: int  # where it was found first (orders the placeholders)
    group: str = ""  # identity of the secret (a private key's lines share one); "" = the value itself
    context: bool = False  # url_password: replaced only as `:VALUE@` (a short password is also an ordinary word)
    example: bool = False  # a documented example or placeholder: counted, never replaced
    part: int = 0  # a private key's body line: its index within the key

    @property
    def identity(self) -> str:
        return self.group or self.value


def shannon_entropy(value: str) -> float:
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values()) if n else 0.0


# ----------------------------------------------------------------------------------------------- detect-secrets

# detect-secrets' secret types → datakit kinds. Left out on purpose: Base64/Hex High Entropy String alone (every
# hash, sha and base64 fixture), Public IP (version strings; not a secret), Artifactory (`AP[0-9A-F]…` matches
# ordinary identifiers), Private Key and GitHub Token and Stripe (done better below), Secret Keyword (below), and
# the IBM / Cloudant / SoftLayer plugins (half the scan time for IBM Cloud alone; their `…_api_key = "…"`
# assignments are secret_assignment findings anyway).
_DS_KINDS = {
    "AWS Access Key": "aws",  # two patterns: the key id, or a secret key assigned to an aws… name
    "Azure Storage Account access key": "azure_storage_key",
    "Basic Auth Credentials": "url_password",
    "Discord Bot Token": "discord_token",
    "GitLab Token": "gitlab_token",
    "JSON Web Token": "jwt",
    "Mailchimp Access Key": "mailchimp_key",
    "NPM tokens": "npm_token",
    "OpenAI Token": "openai_key",
    "PyPI Token": "pypi_token",
    "SendGrid API Key": "sendgrid_key",
    "Slack Token": "slack",
    "Square OAuth Secret": "square_oauth_secret",
    "Telegram Bot Token": "telegram_token",
    "Twilio API Key": "twilio_key",
}
# literals every match of a pattern holds (lower-cased, looked up in the lower-cased text): a text holding none
# skips the pattern (most do, and a scan costs ~0.1 s per MB and pattern)
_NEEDS = {
    "aws": ("akia", "asia", "abia", "acca", "a3t", "aws"), "azure_storage_key": ("accountkey=",),
    "url_password": ("://",), "discord_token": (".",), "gitlab_token": ("gl", "gr1348941"), "jwt": ("eyj",),
    "mailchimp_key": ("-us",), "npm_token": ("_authtoken",), "openai_key": ("t3blbkfj",), "pypi_token": ("pypi-",),
    "sendgrid_key": ("sg.",), "slack": ("xox", "hooks.slack.com"), "square_oauth_secret": ("sq0csp-",),
    "telegram_token": (":",), "twilio_key": ("ac", "sk"), "github_token": ("gh", "github_pat_"),
    "stripe_key": ("k_live_", "k_test_"), "gcp_api_key": ("aiza",), "azure_connection_key": ("key=", "sig="),
    "aws_secret_key": ("aws",),
}
_AWS_KEY_ID = re.compile(r"(?:A3T[A-Z0-9]|ABIA|ACCA|AKIA|ASIA)[0-9A-Z]{16}")


@lru_cache(maxsize=1)
def _plugins():
    """(kind, plugin) for detect-secrets' regex plugins in _DS_KINDS, and its KeywordDetector."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.keyword import KeywordDetector

    classes = get_mapping_from_secret_type_to_class()
    missing = set(_DS_KINDS) - set(classes)
    if missing:
        raise RuntimeError(f"detect-secrets lacks the plugins {sorted(missing)}: install detect-secrets==1.5.* "
                           "(pyproject.toml pins the version datakit is tested with)")
    return [(kind, classes[t]()) for t, kind in _DS_KINDS.items()], KeywordDetector()


def _ds_kind(kind: str, value: str) -> tuple[str, str]:
    if kind == "aws":
        return ("aws_access_key" if _AWS_KEY_ID.fullmatch(value) else "aws_secret_key"), value
    if kind == "slack":
        return ("slack_webhook" if value.startswith("https://") else "slack_token"), value
    if kind == "azure_storage_key":
        return kind, value.removeprefix("AccountKey=")
    return kind, value


# ------------------------------------------------------------------------------------------- datakit's patterns

_B = r"(?<![A-Za-z0-9_])"  # no token character before
_E = r"(?![A-Za-z0-9_])"  # …nor after
_OWN = [
    ("github_token", re.compile(_B + r"(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,247})" + _E)),
    ("stripe_key", re.compile(_B + r"[rs]k_(?:live|test)_[0-9a-zA-Z]{24,247}" + _E)),
    ("gcp_api_key", re.compile(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])")),
    ("azure_connection_key", re.compile(r"(?:SharedAccessKey|AccountKey)=([A-Za-z0-9+/]{40,86}={0,2})")),
    ("azure_connection_key", re.compile(r"[?&]sig=((?:[A-Za-z0-9]|%2[BbFf]|%3[Dd]){43,64})")),
    ("aws_secret_key", re.compile(r"(?i:aws_?secret_?(?:access_?)?key)[\"']?\s*[=:]\s*[\"']?([A-Za-z0-9/+]{40})"
                                  r"(?![A-Za-z0-9/+])")),
    ("url_password", re.compile(r"://[^\s:/?#\[\]@]*:([^\s:/?#\[\]@]+)@")),  # also an empty user: redis://:pw@
]

# a secret-looking name, an assignment, a value (what detect-secrets' keyword list misses)
# (the names are matched on the text lower-cased, `_lower`: Python's re is 10x slower on IGNORECASE alternations)
_ASSIGN = re.compile(
    r"(?:token|access_?key|secret_?key|credentials?|passphrase|api_?secret)[a-z0-9_]*"
    r"[\"'\]]{0,2}[ \t]*(?::=|=>|==|[:=])[ \t]*[rbuf]?([\"'`]?)([A-Za-z0-9_+/=.~!@#$%^&*:-]{12,})\1")
# …and a name then a value as two string arguments: os.environ.setdefault("API_SECRET", "…"), env.get("TOKEN", "…")
_ASSIGN_ARGS = re.compile(
    r"[\"'][a-z0-9_.-]*(?:token|secret|passw(?:or)?d|api_?key|access_?key|credentials?)[a-z0-9_]*[\"']"
    r"[ \t]*,[ \t]*[rbuf]?([\"'])([A-Za-z0-9_+/=.~!@#$%^&*:-]{12,})\1")
_KEYWORD_LINE = None  # compiled lazily from detect-secrets' DENYLIST
_VALUE = re.compile(r"[A-Za-z0-9_+/=.~!@#$%^&*:-]{12,}")
# names, not values: a dotted path (settings.SECRET_KEY, os.environ), snake or screaming words (API_KEY_NAME_2)
_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*(?:[.:][A-Za-z_$][A-Za-z0-9_$]*)+(?:\(\))?|[A-Za-z]+\d*(?:[_-](?:[A-Za-z]+\d*|\d+))+")


def _keyword_line():
    global _KEYWORD_LINE
    if _KEYWORD_LINE is None:
        from detect_secrets.plugins.keyword import DENYLIST

        _KEYWORD_LINE = re.compile("|".join(DENYLIST))  # lower-case names, matched on `_lower(text)`
    return _KEYWORD_LINE


_ASCII_LOWER = str.maketrans(string.ascii_uppercase + "Ñ", string.ascii_lowercase + "ñ")


def _lower(text: str) -> str:
    """`text` with A-Z lower-cased and nothing else changed: the same length, so positions carry over (str.lower
    may change the length of non-ASCII text)."""
    return text.translate(_ASCII_LOWER)


def looks_like_key(value: str, line: str = "") -> bool:
    """An assigned value that is a key, not a name, a path, a word or a placeholder."""
    from detect_secrets.filters import heuristic as h

    if not _VALUE.fullmatch(value) or _NAME.fullmatch(value):
        return False
    name, eq, rest = value.partition("=")
    if eq and rest.strip("=") and _NAME.fullmatch(name):  # `FOO_THREADS=1`, an environment assignment: judge its value
        return looks_like_key(rest, line)
    classes = sum(any(f(c) for c in value) for f in (str.islower, str.isupper, str.isdigit))
    if classes < 2 or not any(c.isdigit() or c in "+/=" for c in value) or shannon_entropy(value) < 3.0:
        return False
    if "://" in value or value.count("/") >= 3 and not re.search(r"[A-Za-z0-9+/]{20}", value):
        return False  # a URL or a file path
    return not (h.is_potential_uuid(value) or h.is_templated_secret(value) or h.is_prefixed_with_dollar_sign(value)
                or (line and h.is_indirect_reference(line)) or h.is_likely_id_string(value, line))


def is_example(value: str) -> bool:
    """A documented example or a placeholder (AKIAIOSFODNN7EXAMPLE, ghp_xxxx…, 0123456789abcdef…)."""
    from detect_secrets.filters.heuristic import is_sequential_string

    body = value.split("_", 2)[-1] if value[:4] in ("ghp_", "gho_", "ghu_", "ghs_", "ghr_") else value
    return "EXAMPLE" in value.upper() or len(set(body)) <= 4 or is_sequential_string(body)


# ------------------------------------------------------------------------------------------------ private keys

_PEM_BEGIN = re.compile(r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY( BLOCK)?-----")
_PEM_RUN = re.compile(r"[A-Za-z0-9+/=]{16,}")
_PEM_SPLIT = re.compile(r"\\r\\n|\\n|\r")  # inside a line: JSON's escaped newlines (and a stray CR)
# a line of a key's body: base64, or an RFC 1421 header (Proc-Type, DEK-Info), inside any diff marker, comment,
# string or Markdown quoting; the body ends at the first line that is neither (its END line is not)
_PEM_LINE = re.compile(r"[\s+\-\"',#/*;>|]*(?:[A-Za-z0-9+/=]*|[A-Za-z-]+: [^\n]*?)[\s\"',;\\]*")
_PEM_MAX_BODY = 64 * 1024  # a key body is a few KB


def _segments(text: str, pos: int) -> Iterator[str]:
    """The lines after `pos` (each cut at JSON's `\\n` escapes too), read lazily, up to _PEM_MAX_BODY chars."""
    stop = min(len(text), pos + _PEM_MAX_BODY)
    while pos < stop:
        end = text.find("\n", pos, stop)
        end = stop if end < 0 else end
        yield from _PEM_SPLIT.split(text[pos:end])
        pos = end + 1


def _private_keys(text: str) -> Iterator[Finding]:
    for m in _PEM_BEGIN.finditer(text):
        values = []
        for seg in _segments(text, m.end()):
            if not _PEM_LINE.fullmatch(seg):
                break
            for run in _PEM_RUN.finditer(seg):
                value = run.group().lstrip("+")  # a diff's `+` marker (or a leading `+` of the run) stays
                if len(value) >= 16:
                    values.append(value)
        group = "pem:" + "".join(values)[:256]
        for i, v in enumerate(values):
            yield Finding("private_key", v, m.start(), group, part=i)


# a diff hunk can show a key's body without its BEGIN line (3 lines of context): two or more consecutive diff
# lines that are exactly a PEM (64) or OpenSSH (70) base64 line, and no BEGIN line of a public block just before
_DIFF_KEY_LINES = re.compile(r"(?:^[+ -](?:[A-Za-z0-9+/]{64}|[A-Za-z0-9+/]{70})\n){2,}", re.MULTILINE)
_PUBLIC_BEGIN = re.compile(r"-----BEGIN (?!(?:[A-Z0-9]+ )*PRIVATE KEY)[A-Z0-9 ]+-----\n\Z")


def _headless_key_lines(text: str) -> Iterator[Finding]:
    for m in _DIFF_KEY_LINES.finditer(text):
        before = text.rfind("\n", 0, m.start() - 1) + 1
        if _PUBLIC_BEGIN.search(text, before, m.start()) or _PEM_BEGIN.search(text, before, m.start()):
            continue  # a certificate or public key; a private key's own BEGIN line is found by _private_keys
        values = [ln[1:] for ln in m.group().split("\n") if ln]
        for i, v in enumerate(values):
            yield Finding("private_key", v, m.start(), "pemdiff:" + values[0], part=i)


# ------------------------------------------------------------------------------------------------------ e-mail

_TLDS = frozenset("""com org net edu gov mil int info biz name pro mobi asia tel xxx aero coop museum jobs travel
    app dev page tech online site xyz top club shop store blog cloud email mail company group team network systems
    solutions services digital agency studio design media news live world today life space website host software
    codes engineering academy ventures capital finance consulting global works one zone social email ninja rocks
    guru expert science systems""".split())
_EXAMPLE_DOMAINS = re.compile(r"(?i)(?:^|\.)(?:example\.(?:com|org|net)|example|test|invalid|localhost|local)$")
# no one's address: an SSH user (git@gitlab.com), a no-reply sender (GitHub's web-merge committer noreply@github.com;
# but 123+name@users.noreply.github.com names a person)
_SERVICE_LOCAL_PARTS = frozenset({"git", "noreply", "no-reply", "donotreply", "do-not-reply"})
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])([A-Za-z0-9][A-Za-z0-9._%+-]{0,63})@"
    r"((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+([A-Za-z]{2,24}))"
    r"(?![A-Za-z0-9-]|\.[A-Za-z0-9]|[(:])")  # not `git@github.com:o/r` (scp syntax), not `x@w.to(device)`


_USERINFO = re.compile(r"://[^\s/@]*\Z")


def _emails(text: str) -> Iterator[Finding]:
    for m in _EMAIL.finditer(text):
        domain, tld = m.group(2), m.group(3).lower()
        if len(tld) > 2 and tld not in _TLDS:
            continue  # `x@self.weight` (matrix product), `icon@2x.png`: not an address
        value = m.group(0)
        if _USERINFO.search(text, max(0, m.start() - 256), m.start()):
            continue  # `ssh://git@host/…`, `https://user:token@host`: a URL's user, not an address
        example = bool(_EXAMPLE_DOMAINS.search(domain)) or m.group(1).lower() in _SERVICE_LOCAL_PARTS
        yield Finding("email", value, m.start(), example=example)


# -------------------------------------------------------------------------------------------------- assembled


def _candidates(text: str) -> Iterator[tuple[str, str, str]]:
    """(kind, value, line) of every raw detection; `line` is where an assignment was seen ('' for formats)."""
    plugins, keyword = _plugins()
    lowered = _lower(text)
    for kind, plugin in plugins:
        if any(n in lowered for n in _NEEDS[kind]):
            for value in plugin.analyze_string(text):
                if value:
                    yield (*_ds_kind(kind, value), "")
    for kind, pattern in _OWN:
        if any(n in lowered for n in _NEEDS[kind]):
            for m in pattern.finditer(text):
                yield kind, m.group(m.lastindex or 0), ""
    kw = _keyword_line()
    seen: set[int] = set()
    for m in kw.finditer(lowered):  # the lines holding one of detect-secrets' secret names
        start = text.rfind("\n", 0, m.start()) + 1
        if start in seen:
            continue
        seen.add(start)
        line = _line_at(text, start)
        if len(line) > 4000 or not _VALUE.search(line):
            continue  # a minified line (detect-secrets' regexes backtrack on those), or no value could be a key
        for filename in ("x.py", "x.yaml"):  # quotes required (code), and unquoted config values
            for s in keyword.analyze_line(filename=filename, line=line, line_number=0):
                yield "secret_assignment", s.secret_value or "", line
    for m in (*_ASSIGN.finditer(lowered), *_ASSIGN_ARGS.finditer(lowered)):
        yield "secret_assignment", text[m.start(2):m.end(2)], _line_at(text, text.rfind("\n", 0, m.start()) + 1)


def _line_at(text: str, start: int) -> str:
    end = text.find("\n", start)
    return text[start:] if end < 0 else text[start:end]


def find_secrets(text: str) -> list[Finding]:
    """Every secret and e-mail address in `text`, one Finding per distinct value (its most specific kind, its
    first position), in order of first appearance."""
    best: dict[str, Finding] = {}

    def add(f: Finding) -> None:
        old = best.get(f.value)
        if old is None or _RANK[f.kind] < _RANK[old.kind]:
            best[f.value] = f

    for kind, value, line in _candidates(text):
        value = value.strip()
        if not value or "\n" in value or value.startswith("<SECRET:") or value.startswith("<EMAIL"):
            continue
        if kind == "secret_assignment" and not looks_like_key(value, line):
            continue
        if kind == "url_password" and (len(value) < 3 or _is_placeholder_password(value)):
            continue
        start = text.find(value)
        if start < 0:
            continue
        add(Finding(kind, value, start, context=kind == "url_password", example=is_example(value)))
    for f in (*_private_keys(text), *_headless_key_lines(text)):
        add(f)
    for f in _emails(text):
        add(f)
    return sorted(best.values(), key=lambda f: (f.start, f.part, f.value))


_PLACEHOLDER_PASSWORDS = re.compile(
    r"(?i)(?:pass(?:word)?|secret|changeme|\*+|x+|\.{3}|%s|%\(\w+\)s|\$\w+|\$\{[^}]*\}|\{\{?[^}]*\}?\}|<[^>]*>"
    r"|your_?\w*|my_?\w*|p[a@]ssw[o0]rd\d*|test\w*|admin|root|guest|user\w*|token|secret|key|pwd|pw)")


def _is_placeholder_password(value: str) -> bool:
    return bool(_PLACEHOLDER_PASSWORDS.fullmatch(value))
