"""Readers and writers at the edges of every stage: schema-checked Parquet (zstd) and the quarantine.

Inside a pipeline a record travels as a datatrove `Document` whose `metadata` *is* the record dict (`text` and `id`
mirror its fields so datatrove's own steps work on it). Writers take their Arrow schema from `schemas/`, never
from the first document, and name files `{rank:05d}.parquet`, so no two tasks write one file. A file is written
as `{rank:05d}.parquet.tmp` (which no reader globs) and renamed when complete: a killed task leaves no half file
under a final name, and its rerun overwrites the `.tmp` and renames it.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

import pyarrow as pa
import pyarrow.parquet as pq
from datatrove.data import Document
from datatrove.pipeline.readers.parquet import ParquetReader
from datatrove.pipeline.writers.parquet import ParquetWriter
from datatrove.utils.stats import MetricStats

from datakit.io.schemas import arrow_schema, conform


def prompt_completion(row: dict) -> tuple[str, str]:
    """(prompt, completion) of a stored sample row: its `text` sliced at `prompt_chars` (schemas/sample.schema.json).
    A sample stores the document once; chat samples (no `prompt_chars`) have no prompt/completion split."""
    cut = row.get("prompt_chars")
    if cut is None:
        raise ValueError(f"sample {row.get('id')!r} has no prompt_chars (a chat sample: read its messages)")
    text = row["text"]
    return text[:cut], text[cut:]


class RecordFileError(RuntimeError):
    """A stage's Parquet file that cannot be read (cut short, corrupted): the message names the file and the fix."""


@contextlib.contextmanager
def reading_parquet(path: str):
    """Turn pyarrow's error on a broken file (which names no file) into a RecordFileError that does."""
    try:
        yield
    except (pa.ArrowException, OSError) as exc:
        raise RecordFileError(f"{path}: not a readable Parquet file ({exc}). It was cut short or corrupted (an "
                              "interrupted copy, a lost disk): delete it and rerun the stage that wrote it with "
                              "--force") from exc


def as_document(record: dict, text_field: str | None = None) -> Document:
    return Document(text=(record.get(text_field) or "") if text_field else "", id=record["id"], metadata=record)


class _RefusePandas:
    """A meta-path finder under which `import pandas` fails."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] == "pandas":
            raise ImportError("pandas is not needed to write records")
        return None


def skip_pyarrow_pandas_probe() -> None:
    """pyarrow imports pandas (~0.4 s and ~40 MiB per process) on its first Python-object conversion, only to ask
    whether the object is a pandas one; records never are. When nothing has imported pandas yet, let that first
    probe find none: pyarrow remembers the answer for its probes and still imports pandas for an explicit
    `to_pandas()`. (datakit.decontam.steps does the same for its own step.)"""
    if "pandas" in sys.modules:
        return
    sys.meta_path.insert(0, _RefusePandas)
    try:
        pa.array([None])
    finally:
        sys.meta_path.remove(_RefusePandas)


# Large free-text columns: dictionary encoding costs a third of the write CPU on them and never pays (every value
# differs); pyarrow would try it page after page before falling back to plain.
PLAIN_COLUMNS = frozenset({"text", "diff", "body", "record", "detail", "content", "reasoning", "message"})


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """Parquet leaf paths (`a.b`, `a.list.element`) of `schema` that keep dictionary encoding: all but the
    large free-text ones."""
    out: list[str] = []

    def walk(path: str, name: str, kind: pa.DataType) -> None:
        if pa.types.is_struct(kind):
            for i in range(kind.num_fields):
                child = kind.field(i)
                walk(f"{path}.{child.name}", child.name, child.type)
        elif pa.types.is_list(kind) or pa.types.is_large_list(kind):
            walk(f"{path}.list.element", name, kind.value_type)
        elif name not in PLAIN_COLUMNS:
            out.append(path)

    for field in schema:
        walk(field.name, field.name, field.type)
    return out


PARTIAL = ".tmp"  # suffix of a file being written; renamed to its final name when complete


def write_text_atomic(path, text: str) -> None:
    """`path.tmp`, then a rename over `path`: a kill leaves the old file or the new one, never half of one. On object
    storage (a URL, an ObjectPath) one PUT of the whole text is already that (datakit.io.storage)."""
    from datakit.io.storage import as_path, is_url

    if is_url(path):
        as_path(path).write_text(text)
        return
    tmp = f"{os.fspath(path)}{PARTIAL}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


class RecordWriter(ParquetWriter):
    """Writes records of one schema (`pull_record`, `sample`, `quarantine`) to `{folder}/{rank:05d}.parquet`.

    zstd; no dictionary and no min/max statistics on the large text columns (`PLAIN_COLUMNS`: every value differs,
    and a reader never filters on them); no content-defined chunking (datatrove's
    default, for Hugging Face Hub deduplication: it costs a quarter of the write CPU here and, with its small
    pages, a third more bytes); batches of 64 records, so a task holds a few MiB of rows, not a few hundred. Pages
    carry a CRC32, which `RecordReader` verifies: a corrupted byte is an error naming the file, not a changed
    record. Atomic: see `PARTIAL`."""

    name = "📒 RecordWriter"

    def __init__(self, output_folder: str, record: str, batch_size: int = 64):
        self.record = record
        super().__init__(
            output_folder,
            output_filename="${rank}.parquet",
            compression="zstd",
            schema=arrow_schema(record),
            batch_size=batch_size,
            max_file_size=-1,
            use_content_defined_chunking=False,
        )
        self.use_dictionary = dictionary_columns(self.schema)

    def _default_adapter(self, document: Document) -> dict:
        return conform(document.metadata, self.record)

    def _write(self, document: dict, file_handler, filename: str) -> None:
        if filename not in self._writers:  # datatrove's own writer, with our column encodings
            skip_pyarrow_pandas_probe()  # here, in the process that writes (the step may be pickled to another)
            self._writers[filename] = pq.ParquetWriter(file_handler, schema=self.schema, compression=self.compression,
                                                       use_dictionary=self.use_dictionary,
                                                       write_statistics=self.use_dictionary, write_page_index=True,
                                                       write_page_checksum=True)
        super()._write(document, file_handler, filename)

    def _get_output_file_with_retry(self, output_filename: str):
        return super()._get_output_file_with_retry(output_filename + PARTIAL)

    def close_file(self, filename: str) -> None:
        """The last batch and the footer, then the rename (datatrove's own close_file would open `filename`)."""
        self._write_batch(filename)
        if filename in self._writers:
            self._writers.pop(filename).close()
        self.output_mg.pop(filename + PARTIAL).close()
        self.output_folder.mv(filename + PARTIAL, filename)

    def __exit__(self, exc_type, exc_val, exc_tb):
        """datatrove closes a writer (and so would publish its files) however its `with` block ends: a task that
        raises, or is interrupted, leaves its `.tmp` files unpublished instead (the rerun of the task overwrites
        them), so no partial shard appears under a final name. A generator closed early (GeneratorExit) is not a
        failure: what was written is published."""
        if exc_type is None or issubclass(exc_type, GeneratorExit):
            self.close()
            return
        self.abort()

    def abort(self) -> None:
        """Close every open file without its last batch or a rename (their `.tmp` stay, unread by any reader)."""
        for writer in self._writers.values():
            try:
                writer.close()
            except Exception:  # noqa: BLE001 - the task is failing already; its own error is the one to report
                pass
        self._writers.clear()
        self._batches.clear()
        self.output_mg.close()


def _as_binary(column: pa.Array) -> pa.Array:
    """A string column as binary: the same buffers (a zero-copy view), so `to_pylist` makes bytes, not str."""
    if pa.types.is_string(column.type):
        return column.view(pa.binary())
    if pa.types.is_large_string(column.type):
        return column.view(pa.large_binary())
    return column


# the key of a record read with a column projection that says where it was read: (file, row in the file)
READ_FROM = "_read_from"


def projected_columns(schema: pa.Schema, columns) -> list[str]:
    """The `columns` a file of this schema has: a top-level name, or `struct.field` (that field of a struct
    column, read as a struct of it alone)."""
    names = set(schema.names)
    kept = []
    for column in columns:
        top, _, field = column.partition(".")
        if top not in names:
            continue
        if field:
            t = schema.field(top).type
            if not pa.types.is_struct(t) or t.get_field_index(field) < 0:
                continue
        kept.append(column)
    return kept


class FullRecords:
    """The whole record of one read with a column projection (`RecordReader(columns=...)`), every column read
    again from its file: for the quarantine, which keeps a record as it was stored. The row group last read is
    kept, so the rejects of one bad file read each of its row groups once at most."""

    def __init__(self) -> None:
        self._path = self._file = None
        self._group, self._rows = -1, []  # the row group last read, as dicts

    def __call__(self, record: dict) -> dict:
        where = record.get(READ_FROM)
        if where is None:
            return record
        path, row = where
        with reading_parquet(path):
            if path != self._path:
                self.close()
                from datakit.io.storage import arrow

                src, fs = arrow(path)
                self._file, self._path = pq.ParquetFile(src, filesystem=fs), path
            meta, start = self._file.metadata, 0
            for group in range(meta.num_row_groups):
                n = meta.row_group(group).num_rows
                if row < start + n:
                    break
                start += n
            else:
                raise RecordFileError(f"{path}: has no row {row}; it changed while the stage ran: rerun with --force")
            if group != self._group:
                table = self._file.read_row_group(group, use_threads=False)
                values = [_values(table.column(i)) for i in range(table.num_columns)]
                self._group, self._rows = group, [dict(zip(table.column_names, v)) for v in zip(*values)]
        return self._rows[row - start]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._path = self._file = None
        self._group, self._rows = -1, []


def _values(column: pa.ChunkedArray) -> list:
    """A column's values; a string column that is not valid UTF-8 (another tool's file) with U+FFFD for what is
    not, as the quarantine keeps a text the stage rejected as `invalid_utf8`."""
    try:
        return column.to_pylist()
    except UnicodeDecodeError:
        if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            raise
        return [None if v is None else v.decode("utf-8", "replace")
                for chunk in column.chunks for v in _as_binary(chunk).to_pylist()]


class RecordReader(ParquetReader):
    """Reads records back as Documents, sharded per file. Unlike datatrove's reader it never drops a record for
    having an empty `text` (a PullRecord has none): input counts must add up; it verifies page checksums; and a
    file that cannot be read raises RecordFileError naming it. `columns` reads only those (`struct.field` names
    a struct's field; columns a file lacks are left out) and adds `READ_FROM` to each record, so `FullRecords`
    can read the rest when a record must be kept whole (the tokens stage: 6 of a Sample's columns, −15 % of
    the read's CPU on the benchmark's Samples, more where `meta` holds a repository's structure)."""

    name = "📖 RecordReader"

    def __new__(cls, *args, **kwargs):
        # datatrove's PipelineStep.__new__ checks ParquetReader's pyarrow dependency by scanning the metadata of
        # every installed distribution (~0.6 CPU s per process); this module has imported pyarrow already
        return object.__new__(cls)

    def __init__(self, data_folder: str, text_field: str | None = None, limit: int = -1,
                 text_as_bytes: bool = False, columns: list[str] | None = None, **kwargs):
        super().__init__(data_folder, limit=limit, glob_pattern="*.parquet", recursive=False, **kwargs)
        self.text_field = text_field
        self.columns = list(columns) if columns is not None else None
        # the text field handed on as its UTF-8 bytes, never decoded into a str (the tokens stage: its engine takes
        # bytes, and decoding every text was ~9 % of a task); datatrove's doc_len then counts bytes
        self.text_as_bytes = text_as_bytes
        self._doc_lens: list[int] | None = None  # the doc_len stat's values not merged yet (while run() reads)

    def get_document_from_dict(self, data: dict, source_file: str, id_in_file: int) -> Document:
        return as_document(data, self.text_field)

    def update_doc_stats(self, document: Document) -> None:
        """datatrove's `doc_len` stat, gathered per file and merged once (a MetricStats update per document was
        ~5 % of a tokens task); count, total, min and max are the same, mean and variance up to float rounding."""
        if self._doc_lens is None:  # a subclass's own run (RowShardedRecordReader): per document
            super().update_doc_stats(document)
            return
        self._doc_lens.append(len(document.text))
        if (token_count := document.metadata.get("token_count")):
            self.stat_update("doc_len_tokens", value=token_count, unit="doc")

    def _merge_doc_lens(self) -> None:
        lens, self._doc_lens = self._doc_lens, []
        if not lens:
            return
        n, total = len(lens), sum(lens)
        mean = total / n
        part = MetricStats(total=total, n=n, mean=mean, min=min(lens), max=max(lens),
                           _running_variance=sum((x - mean) ** 2 for x in lens), unit="doc")
        merged = self.stats["doc_len"] + part
        merged.unit = "doc"
        self.stats["doc_len"] = merged

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        self._doc_lens = []
        try:
            for document in super().run(data, rank, world_size):
                yield document
                if len(self._doc_lens) >= 65536:
                    self._merge_doc_lens()
        finally:
            self._merge_doc_lens()
            self._doc_lens = None

    def read_file(self, filepath: str):
        with reading_parquet(self.data_folder.resolve_paths(filepath)), self.data_folder.open(filepath, "rb") as f, \
                pq.ParquetFile(f, page_checksum_verification=True, pre_buffer=not self.data_folder.is_local()) as pqf:
            # pre-buffering (pyarrow's default) coalesces reads for object storage; on a local disk it only holds
            # ~32 MiB read-ahead per file (measured: 2 GB tokens run's peak RSS +41 % → +22 % over 200 MB without)
            index = 0
            # a --limit task takes at most skip + limit rows from a file: no 1,000-row batch decoded for 1 of them
            batch_size = self.batch_size if self.limit < 0 else max(1, min(self.batch_size, self.skip + self.limit))
            columns = None if self.columns is None else projected_columns(pqf.schema_arrow, self.columns)
            path = self.data_folder.resolve_paths(filepath) if columns is not None else None
            # one thread: a task is the unit of parallelism (one per core); Arrow's pool decoding the columns in
            # parallel only added CPU and per-thread heaps (a 67 MB Sample file: 0.79 → 0.54 CPU s, RSS −32 MiB)
            for batch in pqf.iter_batches(batch_size=batch_size, use_threads=False, columns=columns):
                # column by column, then zipped: the same dicts as `batch.to_pylist()` in half its CPU
                names, arrays = batch.schema.names, batch.columns
                if self.text_as_bytes and self.text_field in names:
                    i = names.index(self.text_field)
                    arrays[i] = _as_binary(arrays[i])
                for values in zip(*(array.to_pylist() for array in arrays)):
                    record = dict(zip(names, values))
                    if path is not None:
                        record[READ_FROM] = (path, index)
                    yield self.get_document_from_dict(record, filepath, index)
                    index += 1


class Quarantine:
    """The side output of a step: records it could not process, with the reason. Opened lazily per task."""

    def __init__(self, output_folder: str, stage: str):
        self.output_folder = output_folder
        self.stage = stage
        self._writer: RecordWriter | None = None

    def put(self, record: dict, reason: str, detail: str, rank: int, role: str | None = None) -> None:
        if self._writer is None:
            self._writer = RecordWriter(self.output_folder, "quarantine")
        row = {
            "id": f"{record.get('id')}/{role}" if role else str(record.get("id")),
            "stage": self.stage,
            "role": role,
            "reason": reason,
            "detail": detail,
            "record": json.dumps(record, ensure_ascii=False, sort_keys=True, default=str),
        }
        self._writer.write(Document(text="", id=row["id"], metadata=row), rank)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
