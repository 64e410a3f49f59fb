"""Where a stage's files live: a local folder (a `pathlib.Path`, as before) or an fsspec URL (`s3://bucket/prefix`,
`gs://…`, `hf://datasets/…`) — the shared storage a multi-machine run needs.

`as_path` turns a recipe's string into one or the other; `ObjectPath` offers the part of pathlib that the runner and
the stages use (`/`, `name`, `glob`, `read_text`, `open`, …) on any fsspec filesystem, so one code path serves
both, and a local path never leaves pathlib (no fsspec round trip, no s3fs import). Storage options come from the
filesystem's own configuration: the environment (`AWS_ENDPOINT_URL`, `AWS_PROFILE`, …) or fsspec's config
(`FSSPEC_S3_ENDPOINT_URL`, `~/.config/fsspec/*.json`).

Atomic writes: a small file (stats.json, a manifest, a marker) is one PUT of its whole bytes (`write_text`): object
storage shows the old object or the new one, never half of one, with no rename (S3 has none). A streamed file
(record Parquet, token shards, `.bin/.idx`) is written as `name.tmp` and moved to its name when complete, as on
a local disk: a multipart upload is committed by `close()`, which also runs when the writer fails half-way, so
only a name that readers never glob keeps a failed task's bytes out of sight; the move is a server-side copy.
"""

from __future__ import annotations

import fnmatch
import functools
import os
from pathlib import Path, PurePosixPath
from types import SimpleNamespace


def is_url(path) -> bool:
    """True for an fsspec URL other than a local `file://` one (and for an ObjectPath)."""
    if isinstance(path, ObjectPath):
        return True
    if isinstance(path, Path):
        return False
    text = os.fspath(path)
    return "://" in text and not text.startswith("file://")


def as_path(path) -> Path | ObjectPath:
    """A Path for a local path (unchanged when it is one), an ObjectPath for a URL."""
    if isinstance(path, (Path, ObjectPath)):
        return path
    text = os.fspath(path)
    if is_url(text):
        return ObjectPath(text)
    return Path(text.removeprefix("file://"))


def resolve(path) -> Path | ObjectPath:
    """`as_path`, made absolute when local."""
    p = as_path(path)
    return p.resolve() if isinstance(p, Path) else p


BUCKETS = ("s3", "s3a", "gs", "gcs", "az", "abfs")  # object stores whose paths start with a bucket


def _filesystem(protocol: str):
    return _filesystem_of(protocol, os.getpid())  # a forked child makes its own (an s3fs client is not fork-safe)


@functools.cache
def _filesystem_of(protocol: str, pid: int):
    import fsspec

    try:
        return fsspec.filesystem(protocol)
    except ImportError as exc:  # s3fs, gcsfs, …: the filesystem's own package
        raise ImportError(f"{protocol}:// paths need their fsspec filesystem ({exc}): pip install 'datakit[s3]' "
                          "for s3://, gcsfs for gs://") from exc


class ObjectPath:
    """A file or folder on an fsspec filesystem, by URL. Pickles as its URL (steps travel to other processes and
    machines); the filesystem is made once per process. Folders are prefixes: `mkdir` makes no object where the
    filesystem has no folders, and a folder exists while it holds a file. Listings are never served from fsspec's
    cache: other tasks, on other machines, write into the same folders."""

    __slots__ = ("url", "_info")

    def __init__(self, url: str, info: dict | None = None):
        self.url = url.rstrip("/") if not url.endswith("://") else url
        self._info = info  # from the listing that found it (type, size): no request per child

    # -- names ------------------------------------------------------------------------------------------------
    @property
    def protocol(self) -> str:
        return self.url.split("://", 1)[0]

    @property
    def fs(self):
        return _filesystem(self.protocol)

    @property
    def path(self) -> str:
        """The path the filesystem's methods take (the URL without its protocol)."""
        return self.url.split("://", 1)[1]

    def _child(self, path: str, info: dict | None = None) -> ObjectPath:
        return ObjectPath(f"{self.protocol}://{path}", info)

    def __truediv__(self, other) -> ObjectPath:
        return ObjectPath(f"{self.url}/{os.fspath(other)}")

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"ObjectPath({self.url!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, ObjectPath) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    def __lt__(self, other: ObjectPath) -> bool:  # by parts, as pathlib sorts ("a/b" before "a.txt")
        return self.url.split("/") < other.url.split("/")

    def __reduce__(self):
        return ObjectPath, (self.url,)

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def stem(self) -> str:
        return PurePosixPath(self.name).stem

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.name).suffix

    @property
    def parent(self) -> ObjectPath:
        return ObjectPath(self.url.rsplit("/", 1)[0])

    def with_name(self, name: str) -> ObjectPath:
        return self.parent / name

    def with_suffix(self, suffix: str) -> ObjectPath:
        return self.with_name(PurePosixPath(self.name).with_suffix(suffix).name)

    def relative_to(self, other: ObjectPath) -> PurePosixPath:
        if not self.url.startswith(other.url + "/"):
            raise ValueError(f"{self.url} is not under {other.url}")
        return PurePosixPath(self.url[len(other.url) + 1:])

    def is_absolute(self) -> bool:
        return True

    # -- queries (never from a cached listing) ----------------------------------------------------------------
    def _fresh(self):
        fs = self.fs
        fs.invalidate_cache()
        return fs

    def exists(self) -> bool:
        return self._fresh().exists(self.path)

    def is_file(self) -> bool:
        if self._info is not None:
            return self._info["type"] == "file"
        return self._fresh().isfile(self.path)

    def is_dir(self) -> bool:
        if self._info is not None:
            return self._info["type"] == "directory"
        return self._fresh().isdir(self.path)

    def is_symlink(self) -> bool:
        return False

    def stat(self):
        info = self._info if self._info is not None else self._fresh().info(self.path)
        return SimpleNamespace(st_size=info.get("size") or 0)

    def iterdir(self):
        entries = self._fresh().ls(self.path, detail=True)
        return iter(sorted(self._child(e["name"].rstrip("/"), e) for e in entries
                           if e["name"].rstrip("/") != self.path))

    def glob(self, pattern: str):
        """Paths matching a pattern of whole levels (`*.parquet`, `matches/*.parquet`, `[0-9]*`), as pathlib's glob
        (no `**`: see rglob)."""
        if "**" in pattern:
            raise ValueError(f"ObjectPath.glob takes no '**' (use rglob), got {pattern!r}")
        found = [self]
        for part in pattern.split("/"):
            level = []
            for folder in found:
                try:
                    level += [p for p in folder.iterdir() if fnmatch.fnmatchcase(p.name, part)]
                except FileNotFoundError:  # as pathlib: a missing folder matches nothing
                    pass
            found = level
        return iter(found)

    def rglob(self, pattern: str):
        """Files (not folders: object storage has none) anywhere below, whose name matches `pattern`."""
        found = self._fresh().find(self.path, detail=True)  # {} for a missing folder
        return iter(sorted(self._child(name, info) for name, info in found.items()
                           if info["type"] == "file" and fnmatch.fnmatchcase(name.rsplit("/", 1)[-1], pattern)))

    # -- reading and writing ----------------------------------------------------------------------------------
    def open(self, mode: str = "rb", encoding: str | None = None, **kwargs):
        if "b" not in mode:
            kwargs["encoding"] = encoding or "utf-8"
        return self.fs.open(self.path, mode, **kwargs)

    def read_bytes(self) -> bytes:
        return self.fs.cat_file(self.path)

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> None:
        self.fs.pipe_file(self.path, data)  # one PUT: atomic on object storage

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(text.encode(encoding))

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        if self.protocol not in BUCKETS:  # an object store has no folders (and s3fs would create a missing bucket)
            self.fs.makedirs(self.path, exist_ok=True)

    def check_bucket(self) -> None:
        """FileNotFoundError naming the fix when an object store's bucket is missing or out of reach."""
        if self.protocol in BUCKETS:
            bucket = self.path.split("/", 1)[0]
            try:
                found = self._fresh().exists(bucket)
            except (OSError, ValueError) as exc:  # credentials, endpoint
                raise FileNotFoundError(f"{self.url}: bucket {bucket} cannot be reached ({exc}); check the "
                                        "endpoint and credentials (AWS_ENDPOINT_URL, AWS_PROFILE, …)") from exc
            if not found:
                raise FileNotFoundError(f"{self.url}: no bucket {bucket}; create it first (datakit creates none), "
                                        "or check the endpoint and credentials (AWS_ENDPOINT_URL, AWS_PROFILE, …)")

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            self.fs.rm_file(self.path)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def replace(self, target: ObjectPath) -> ObjectPath:
        self.fs.mv(self.path, as_path(target).path)
        return as_path(target)


def rmtree(path: Path | ObjectPath) -> None:
    """Remove a folder and everything under it."""
    if isinstance(path, ObjectPath):
        if path.exists():
            path.fs.rm(path.path, recursive=True)
    else:
        import shutil

        shutil.rmtree(path)


def replace(src: Path | ObjectPath, dst: Path | ObjectPath) -> None:
    """`os.replace` on a local disk; a move (server-side copy, then delete) on object storage."""
    if isinstance(src, ObjectPath):
        src.replace(dst)
    else:
        os.replace(src, dst)


def fsync(f) -> None:
    """Flush a local file to disk (an object is durable once its upload completes)."""
    if hasattr(f, "fileno"):
        try:
            fd = f.fileno()
        except (OSError, ValueError):  # fsspec buffered files have no descriptor
            return
        f.flush()
        os.fsync(fd)


def arrow(path) -> tuple:
    """(source, filesystem) for pyarrow: `src, fs = arrow(p)`, then `pq.ParquetFile(src, filesystem=fs)` (and so
    `ParquetWriter`, `read_metadata`, `read_schema`, `read_table`). Local: the path and None (pyarrow's own file
    access, as before); a URL: its path and the fsspec filesystem, which pyarrow wraps (and closes what it opened)."""
    if is_url(path):
        p = as_path(path)
        return p.path, p.fs
    return path, None
