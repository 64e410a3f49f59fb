"""Redaction measured: a planted corpus (recall per kind, target 100 %) and clean code full of traps (false
positives: hashes, git shas, UUIDs, base64 fixtures, documented example keys, placeholders, URLs' users,
matrix products). `python -m tests.test_redact_corpus` prints the table BENCHMARKS.md records."""

from __future__ import annotations

import random
import string
from collections import Counter
from pathlib import Path

from datakit.redact.detect import find_secrets
from datakit.redact.replace import Redaction

ROOT = Path(__file__).resolve().parent.parent
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"


def _r(rng: random.Random, n: int, alphabet: str = ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _pem(rng: random.Random, label: str, lines: int = 8, sep: str = "\n", prefix: str = "") -> tuple[str, list[str]]:
    body = [_r(rng, 64, B64) for _ in range(lines)] + [_r(rng, 20, B64) + "=="]
    text = sep.join([f"{prefix}-----BEGIN {label}PRIVATE KEY-----", *(prefix + b for b in body),
                     f"{prefix}-----END {label}PRIVATE KEY-----"])
    return text, [b.lstrip("+") for b in body]


# kind → value makers; each value is planted in every context of its kind
def _values(rng: random.Random) -> dict[str, list[str]]:
    return {
        "github_token": [f"{p}_{_r(rng, 36)}" for p in ("ghp", "gho", "ghu", "ghs", "ghr")]
                        + [f"github_pat_{_r(rng, 22)}_{_r(rng, 59)}"],
        "aws_access_key": ["AKIA" + _r(rng, 16, string.ascii_uppercase + string.digits) for _ in range(3)]
                          + ["ASIA" + _r(rng, 16, string.ascii_uppercase + string.digits)],
        "gcp_api_key": ["AIza" + _r(rng, 35, ALNUM + "_-") for _ in range(3)],
        "slack_token": [f"xox{c}-{_r(rng, 12, string.digits)}-{_r(rng, 13, string.digits)}-"
                        f"{_r(rng, 24, string.ascii_lowercase + string.digits)}" for c in "bpa"],
        "slack_webhook": [f"https://hooks.slack.com/services/T{_r(rng, 8, string.ascii_uppercase)}/"
                          f"B{_r(rng, 8, string.ascii_uppercase)}/{_r(rng, 24)}"],
        "stripe_key": [f"sk_live_{_r(rng, 24)}", f"rk_live_{_r(rng, 99)}", f"sk_test_{_r(rng, 32)}"],
        "email": ["jane.doe@gmail.com", "b.smith+ci@company.io", "41898282+octo-cat@users.noreply.github.com",
                  "dev.team@mail.example-corp.de", "x_y@univ.edu"],
    }


# contexts for values whose format alone makes them secrets: issue text, comments, commit messages, code, diffs
FORMAT_CONTEXTS = [
    "### Steps to reproduce\nI ran `deploy --key {v}` and it failed with 403.\n",
    "**alice**: I pasted my credentials by mistake: {v} (please delete this comment)\n",
    "Fix the upload client\n\nThe old key {v} was revoked.\n",
    'CLIENT = Client("{v}")\n',
    "value: {v}\n",
    '+    headers = {{"Authorization": "Bearer {v}"}}\n',
    " call(key='{v}')  # context line of a diff\n",
    '{{"key": "{v}", "region": "us-east-1"}}\n',
]
# contexts for keys assigned to secret-looking names (no format of their own)
ASSIGNED = [
    ('api_key = "{v}"\n', "hex32"), ('client_secret: "{v}"\n', "b64"), ("export AUTH_TOKEN={v}\n", "alnum"),
    ('"password": "{v}",\n', "pw"), ('SECRET_KEY = "{v}"\n', "django"), ('+DB_PASSWORD = "{v}"\n', "pw"),
    ("access_token: {v}\n", "alnum"), ('db_key = "{v}"\n', "hex40"), ("  secret = '{v}'\n", "b64"),
    ('os.environ.setdefault("API_SECRET", "{v}")\n', "alnum"),
]
URL_PASSWORDS = ["postgres://app:{v}@db.internal:5432/prod", "https://deploy:{v}@git.corp.net/org/repo.git",
                 "redis://:{v}@cache:6379/0", "amqp://guest_user:{v}@mq.local//"]


def _assigned_value(rng: random.Random, shape: str) -> str:
    return {"hex32": lambda: _r(rng, 32, "0123456789abcdef"), "hex40": lambda: _r(rng, 40, "0123456789abcdef"),
            "b64": lambda: _r(rng, 40, B64), "alnum": lambda: _r(rng, 28),
            "pw": lambda: _r(rng, 10) + rng.choice("!#%") + _r(rng, 5, string.digits),
            "django": lambda: "django-insecure-" + _r(rng, 50, string.ascii_lowercase + string.digits + "!@#%^&*-_")
            }[shape]()


def planted_corpus(seed: int = 0) -> list[tuple[str, str, list[str]]]:
    """(kind, document, the values that must be gone after redaction)."""
    rng = random.Random(seed)
    docs: list[tuple[str, str, list[str]]] = []
    for kind, values in _values(rng).items():
        for v in values:
            for ctx in FORMAT_CONTEXTS:
                docs.append((kind, ctx.format(v=v), [v]))
    for ctx, shape in ASSIGNED:
        for _ in range(3):
            v = _assigned_value(rng, shape)
            docs.append(("secret_assignment", ctx.format(v=v), [v]))
    for url in URL_PASSWORDS:
        for _ in range(2):
            v = _r(rng, 14) + rng.choice("-_.~")
            docs.append(("url_password", f"DATABASE_URL = '{url.format(v=v)}'\n", [v]))
            docs.append(("url_password", f"Clone with `git clone {url.format(v=v)}` first.\n", [v]))
    for _ in range(3):  # AWS secret keys: in code, in config, unquoted
        v = _r(rng, 40, B64)
        docs.append(("aws_secret_key", f'aws_secret_access_key = "{v}"\n', [v]))
        docs.append(("aws_secret_key", f"AWS_SECRET_ACCESS_KEY={v}\n", [v]))
        docs.append(("aws_secret_key", f"[default]\naws_secret_access_key = {v}\n", [v]))
    for _ in range(3):  # Azure: storage connection strings, Service Bus shared access keys, SAS URLs
        key = _r(rng, 86, B64) + "=="
        docs.append(("azure_storage_key", "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey="
                                          f"{key};EndpointSuffix=core.windows.net\n", [key]))
        sak = _r(rng, 43, B64) + "="
        docs.append(("azure_connection_key", "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName="
                                             f"RootManageSharedAccessKey;SharedAccessKey={sak}\n", [sak]))
        sig = _r(rng, 43) + "%3D"
        docs.append(("azure_connection_key", "https://acct.blob.core.windows.net/c/f.txt?sv=2022-11-02&ss=b&sig="
                                             f"{sig}\n", [sig]))
    for label in ("RSA ", "", "EC ", "OPENSSH ", "DSA ", "ENCRYPTED "):  # private keys: file, diff, JSON one-line
        text, body = _pem(rng, label)
        docs.append(("private_key", f"Here is the key:\n{text}\n", body))
        text, body = _pem(rng, label, prefix="+")
        docs.append(("private_key", f"diff --git a/k.pem b/k.pem\n{text}\n", body))
        text, body = _pem(rng, label, prefix="> ")  # quoted in a reply
        docs.append(("private_key", f"**bob**: you pasted\n{text}\nplease rotate it\n", body))
        text, body = _pem(rng, label, sep="\\n")
        docs.append(("private_key", '{"type": "service_account", "project_id": "p-123", "private_key": "'
                                    + text + '\\n", "client_email": "svc@p-123.iam.gserviceaccount.com"}\n', body))
    for _ in range(2):  # a PGP secret key block: armor headers, a blank line, the body, a checksum
        body = [_r(rng, 64, B64) for _ in range(6)]
        docs.append(("private_key", "-----BEGIN PGP PRIVATE KEY BLOCK-----\nVersion: GnuPG v2\n\n" + "\n".join(body)
                     + "\n=" + _r(rng, 4) + "\n-----END PGP PRIVATE KEY BLOCK-----\n", body))
    return docs


def measure_recall(seed: int = 0) -> tuple[Counter, Counter, list[str]]:
    """(planted per kind, redacted per kind, failures): a document counts as redacted when none of its values
    is left and the expected kind's placeholder stands in the text."""
    planted, redacted, failures = Counter(), Counter(), []
    for kind, doc, values in planted_corpus(seed):
        planted[kind] += 1
        red = Redaction.build(find_secrets(doc), avoid=doc)
        out = red.apply(doc)
        marker = "<EMAIL" if kind == "email" else f"<SECRET:{kind}"
        if not any(v in out for v in values) and marker in out:
            redacted[kind] += 1
        else:
            failures.append(f"{kind}: {doc[:120]!r} → {out[:160]!r}")
    return planted, redacted, failures


# --------------------------------------------------------------------------------------------------- clean code

def clean_corpus(seed: int = 0) -> list[str]:
    """Documents with no secret and no personal address, full of what looks like one."""
    rng = random.Random(seed)
    hexs = lambda n: _r(rng, n, "0123456789abcdef")  # noqa: E731
    uuid = lambda: f"{hexs(8)}-{hexs(4)}-4{hexs(3)}-a{hexs(3)}-{hexs(12)}"  # noqa: E731
    docs = []
    for _ in range(20):
        docs += [
            f'sha = "{hexs(40)}"\n', f"Fixes a regression from {hexs(40)} (see {hexs(12)}).\n",
            f"commit {hexs(40)}\nAuthor: Jane Doe\n", f'digest = "sha256:{hexs(64)}"\n',
            f'"integrity": "sha512-{_r(rng, 86, B64)}=="\n', f"checksum: {hexs(64)}\n",
            f'md5sum = "{hexs(32)}"\n', f'request_id = "{uuid()}"\n', f"uuid.UUID('{uuid()}')\n",
            f'id: "{uuid()}"\n', f'api_key = "{uuid()}"  # a UUID: detect-secrets leaves these\n',
            f'PNG = base64.b64decode("iVBORw0KGgo{_r(rng, 60, B64)}=")\n',
            f'FIXTURE = "{_r(rng, 64, B64)}=="\n', f"data:image/png;base64,{_r(rng, 120, B64)}\n",
            f'expected = b"{_r(rng, 48, B64)}"\n', f"base_sha: {hexs(40)}\nhead_sha: {hexs(40)}\n",
            f"+index {hexs(7)}..{hexs(7)} 100644\n",
            f'tree = "{hexs(40)}"  # the git tree id of the structure\n',
        ]
    docs += [
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
        'token = "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"  # put yours here\n',
        'password = "changeme"\n', 'password = "hunter2"\n', "postgres://user:password@localhost/db\n",
        "https://${GIT_USER}:${GIT_TOKEN}@github.com/org/repo.git\n", 'token = os.environ["GITHUB_TOKEN"]\n',
        "SECRET_KEY = settings.SECRET_KEY\n", "tokens: FASTOKENS_BPE_THREADS=1 unless set\n",
        "env TOKENIZERS_PARALLELISM=false TOKEN_CACHE_MAX_ENTRIES=100000 python train.py\n", "password = get_password(user)\n", 'token_type = "bearer"\n',
        'TOKEN_URL = "https://oauth2.googleapis.com/token"\n', 'secret_name = "prod-db-credentials-v2"\n',
        "def check_password(password: str) -> bool:\n    return bcrypt.checkpw(password, self.hash)\n",
        'api_key = request.headers.get("X-Api-Key")\n', "self.api_key = api_key\n", 'password_field = "password"\n',
        "Contact: jane@example.com, ops@example.org, root@localhost, admin@corp.test\n",
        "git@github.com:django/django.git\n", "ssh://git@github.com/psf/requests\n",
        "https://x-access-token:${TOKEN}@github.com/o/r\n", "    @property\n    def name(self):\n",
        "attn = q@k.transpose(-2, -1) / math.sqrt(d)\n", "y = x@self.weight + b\n", "h = h@W.to(dtype)\n",
        "![logo](img/icon@2x.png)\n", "npm install left-pad@1.3.0 @types/node@18.11.9\n",
        "Co-authored-by: GitHub <noreply@github.com>\n", "git remote add o git@gitlab.com:g/p.git; ssh -T git@bitbucket.org\n",
        "From: GitLab <no-reply@gitlab.example-mail.net>\n", "pip install 'requests[socks]@ git+https://x/y'\n",
        "version = '3.2.1'\nrelease = 'v3.2.1-rc.1+build.5'\n",
        "secret_key_length = 32\nPASSWORD_MIN_LENGTH = 12\n", "key = 'sk_live_' + stripe_suffix  # built at runtime\n",
        'private_key_path = "~/.ssh/id_rsa"\n', 'password = "test_password_123"\n', 'API_KEY = "your-api-key-here"\n',
        'token = "<your token>"\n', "        token: ${{ secrets.GITHUB_TOKEN }}\n", "password: ${DB_PASSWORD:-postgres}\n",
        'secret = "%(secret)s" % params\n', "api_key = settings.get('API_KEY', None)\n", "TOKEN_PREFIX = 'ghp_'\n",
        'hashed = "pbkdf2_sha256$260000$' + _r(rng, 22) + '$' + _r(rng, 43, B64) + '="  # a password hash\n',
        'csrf_token = "{{ csrf_token }}"\n', 'SECRET_KEY_FILE = "/run/secrets/django_key_v2"\n',
        "-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----\n",
        "".join(f"+{_r(rng, 76, B64)}\n" for _ in range(4)),  # MIME base64 in a diff (76 a line, not a key's 64)
        " -----BEGIN CERTIFICATE-----\n" + "".join(f"+{_r(rng, 64, B64)}\n" for _ in range(3)),  # a cert's hunk "-----BEGIN CERTIFICATE-----\nMIIB" + _r(rng, 60, B64) + "\n"
        "-----END CERTIFICATE-----\n", "-----BEGIN PUBLIC KEY-----\nMIIB" + _r(rng, 60, B64) + "\n",
    ]
    return docs


def repository_code() -> list[str]:
    """datakit's own source, tests and demo fixtures (less this package and its tests, and the decontam
    boilerplate, which quotes real maintainers' addresses from licence headers: true positives)."""
    skip = {ROOT / "datakit" / "decontam" / "boilerplate.py"}
    files = [p for folder in ("datakit", "tests") for p in sorted((ROOT / folder).rglob("*"))
             if p.is_file() and p.suffix in (".py", ".json", ".in", ".jsonl", ".md", ".txt")]
    return [p.read_bytes().decode("utf-8", "replace") for p in files
            if p not in skip and "redact" not in p.parts and not p.name.startswith("test_redact")]


def false_positives(docs: list[str]) -> list[str]:
    return [f"{f.kind}: {f.value[:60]!r}" for d in docs for f in find_secrets(d) if not f.example]


# ---------------------------------------------------------------------------------------------------------- tests

def test_recall_is_complete_on_every_planted_kind():
    planted, redacted, failures = measure_recall()
    assert set(planted) == {"github_token", "aws_access_key", "aws_secret_key", "gcp_api_key", "azure_storage_key",
                            "azure_connection_key", "private_key", "slack_token", "slack_webhook", "stripe_key",
                            "url_password", "secret_assignment", "email"}
    assert sum(planted.values()) >= 250
    assert not failures, "\n".join(failures[:20])
    assert redacted == planted


def test_no_false_positive_on_clean_traps():
    docs = clean_corpus()
    assert len(docs) >= 350
    assert false_positives(docs) == []


def test_no_false_positive_on_the_repository_code():
    docs = repository_code()
    assert sum(map(len, docs)) > 500_000
    assert false_positives(docs) == []


def test_documented_examples_are_counted_not_replaced():
    doc = "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\nContact jane@example.com\n"
    red = Redaction.build(find_secrets(doc), avoid=doc)
    assert red.apply(doc) == doc
    assert red.examples == Counter({"aws_access_key": 1, "email": 1}) and not red.counts


def swebench_texts() -> list[str]:
    """SWE-bench Verified's problem statements, hints, gold and test patches (real issues and code; ../shared)."""
    import json

    folder = ROOT.parent / "shared" / "data" / "swebench"
    docs = []
    for name in ("verified.jsonl", "verified_test_patches.jsonl"):
        for line in (folder / name).read_text(encoding="utf-8").splitlines():
            row = json.loads(line)
            docs += [row[k] for k in ("problem_statement", "hints_text", "patch", "test_patch") if row.get(k)]
    return docs


def throughput(docs: list[str]) -> tuple[float, Counter]:
    """(MB of text per CPU second of find_secrets, findings by (kind, example))."""
    import time

    find_secrets("")  # detect-secrets' import and plugin set-up (~0.6 s) are not per-document costs
    found: Counter = Counter()
    start = time.process_time()
    for d in docs:
        found.update((f.kind, f.example) for f in find_secrets(d))
    return sum(map(len, docs)) / 1e6 / (time.process_time() - start), found


def figures() -> str:
    planted, redacted, failures = measure_recall()
    rows = ["| kind | planted | redacted | recall |", "|---|---|---|---|"]
    for kind in sorted(planted):
        rows.append(f"| {kind} | {planted[kind]} | {redacted[kind]} | {redacted[kind] / planted[kind]:.0%} |")
    traps, code = clean_corpus(), repository_code()
    rows.append("")
    rows.append(f"clean traps: {len(traps)} documents, {sum(map(len, traps)):,} chars, "
                f"{len(false_positives(traps))} false positives")
    rows.append(f"repository code: {len(code)} files, {sum(map(len, code)):,} chars, "
                f"{len(false_positives(code))} false positives")
    swe = swebench_texts()
    rate, found = throughput(swe)
    rows.append(f"SWE-bench Verified texts: {len(swe)} documents, {sum(map(len, swe)):,} chars, "
                f"{rate:.2f} MB per CPU second; findings {dict(found)}")
    return "\n".join(rows + failures)


if __name__ == "__main__":
    print(figures())
