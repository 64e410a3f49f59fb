"""The SWE-bench reference instances the decontam stage compares samples with.

Two sources:
- ``"files"``: a folder holding ``verified.jsonl`` (``instance_id, repo, base_commit, problem_statement, patch``)
  and optionally ``verified_test_patches.jsonl`` (``instance_id, test_patch``), such as ``../shared/data/swebench``.
  Only SWE-bench Verified is available this way; ``full=True`` raises `ReferenceUnavailable`.
- ``"hub"``: the Hugging Face datasets ``princeton-nlp/SWE-bench_Verified`` (``full=True``:
  ``princeton-nlp/SWE-bench``), split ``test``. It fails fast and clearly without network: with
  ``HF_HUB_OFFLINE``/``HF_DATASETS_OFFLINE`` set only the local cache is used, otherwise the endpoint is probed
  with a 3 s TCP connect before ``datasets`` (which would retry for minutes) is asked.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

__all__ = ["Instance", "ReferenceUnavailable", "load_reference", "full_test_ids", "HUB_VERIFIED", "HUB_FULL"]

HUB_VERIFIED = "princeton-nlp/SWE-bench_Verified"
HUB_FULL = "princeton-nlp/SWE-bench"


@dataclass(frozen=True)
class Instance:
    instance_id: str
    repo: str
    base_commit: str
    problem_statement: str
    patch: str
    test_patch: str | None


class ReferenceUnavailable(RuntimeError):
    """The requested reference data cannot be loaded (missing files, no network, unsupported combination)."""


def _read_jsonl(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ReferenceUnavailable(f"{path}:{i}: not JSON: {e}") from None
    return rows


def _from_files(path: str | Path | None, full: bool) -> list[Instance]:
    if full:
        raise ReferenceUnavailable(
            "the full SWE-bench test set (full=True) is not available from local files: only verified.jsonl is "
            f"read from a folder; use source='hub' (dataset {HUB_FULL}) with network access")
    if path is None:
        raise ReferenceUnavailable("source='files' needs path= (a folder holding verified.jsonl)")
    folder = Path(path)
    if folder.is_file():
        folder = folder.parent
    main = folder / "verified.jsonl"
    if not main.is_file():
        raise ReferenceUnavailable(f"{main}: no such file (expected a SWE-bench Verified folder)")
    tests_path = folder / "verified_test_patches.jsonl"
    tests = {r["instance_id"]: r["test_patch"] for r in _read_jsonl(tests_path)} if tests_path.is_file() else {}
    out = []
    for r in _read_jsonl(main):
        missing = [k for k in ("instance_id", "repo", "base_commit", "problem_statement", "patch") if k not in r]
        if missing:
            raise ReferenceUnavailable(f"{main}: row {r.get('instance_id', '?')} lacks {', '.join(missing)}")
        out.append(Instance(r["instance_id"], r["repo"], r["base_commit"], r["problem_statement"] or "",
                            r["patch"] or "", r.get("test_patch") or tests.get(r["instance_id"])))
    return out


def _hub_offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _probe_endpoint(timeout: float = 3.0) -> None:
    url = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host, port = url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        raise ReferenceUnavailable(
            f"cannot reach the Hugging Face hub at {host}:{port} ({e}); load the reference from local files "
            "(source='files', path=...) or use the shipped fingerprint index (datakit.decontam.index."
            "default_index()), or set HF_HUB_OFFLINE=1 to use a cached copy") from None


def _from_hub(full: bool) -> list[Instance]:
    name = HUB_FULL if full else HUB_VERIFIED
    offline = _hub_offline()
    if not offline:
        _probe_endpoint()
    try:
        import datasets

        ds = datasets.load_dataset(name, split="test")
    except Exception as e:  # datasets raises many types (ConnectionError, FileNotFoundError, DatasetNotFound…)
        how = "offline mode (HF_HUB_OFFLINE) and no cached copy" if offline else "download failed"
        raise ReferenceUnavailable(f"cannot load {name} from the hub: {how}: {type(e).__name__}: {e}") from None
    return [Instance(r["instance_id"], r["repo"], r["base_commit"], r["problem_statement"] or "",
                     r["patch"] or "", r.get("test_patch") or None) for r in ds]


def load_reference(source: str = "files", path: str | Path | None = None, full: bool = False) -> list[Instance]:
    """The reference instances, in the source's order. `source` is ``"files"`` (needs `path`) or ``"hub"``."""
    if source == "files":
        return _from_files(path, full)
    if source == "hub":
        return _from_hub(full)
    raise ValueError(f"unknown reference source {source!r} (expected 'files' or 'hub')")


def full_test_ids(path: str | Path) -> list[str]:
    """The 2,294 instance ids of the full SWE-bench test set, from ``full_test_ids.txt`` (or a folder holding it)."""
    p = Path(path)
    if p.is_dir():
        p = p / "full_test_ids.txt"
    if not p.is_file():
        raise ReferenceUnavailable(f"{p}: no such file")
    return [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
