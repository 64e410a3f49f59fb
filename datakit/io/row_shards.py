"""Sharding by rows instead of by file: N tasks on one big file (one repository's PullRecords) get N shares.

datatrove shards readers per input file (`files[rank::world_size]`), so a stage whose input is one file keeps
one task busy and the rest idle. `RowShardedRecordReader` sees all files as one sequence of rows (files in name
order, rows in file order) and gives task `rank` the contiguous range `[rank·n/W, (rank+1)·n/W)`; it reads only
the row groups that overlap that range. Contiguous ranges keep one repository's PRs together (the samples
stage's structure cache relies on that). The split depends only on the row counts and the task count, so the
output is deterministic.
"""

from __future__ import annotations

from datakit.io.records import RecordReader, reading_parquet


_PYTHON_ROWS = 64  # rows turned into Python dicts at a time (the Arrow row group is far smaller than its dicts)


def row_range(total: int, rank: int, world_size: int) -> tuple[int, int]:
    return total * rank // world_size, total * (rank + 1) // world_size


class RowShardedRecordReader(RecordReader):
    """`extra_folders`: more input folders, read after the first as one sequence (a recipe's `inputs:` list)."""

    name = "📖 RecordReader (rows)"

    def __init__(self, data_folder: str, text_field: str | None = None, limit: int = -1,
                 extra_folders: list[str] = (), **kwargs):
        super().__init__(data_folder, text_field=text_field, limit=limit, **kwargs)
        from datatrove.io import get_datafolder

        self.folders = [self.data_folder, *(get_datafolder(f) for f in extra_folders)]

    def run(self, data=None, rank: int = 0, world_size: int = 1):
        import pyarrow.parquet as pq

        if data:
            yield from data
        files = [(folder, path) for folder in self.folders
                 for path in sorted(folder.list_files(glob_pattern=self.glob_pattern, recursive=self.recursive))]
        if not files:
            raise RuntimeError(f"No files found on {', '.join(f.path for f in self.folders)}!")
        groups = []  # (folder, file, row group index, first global row, rows)
        offset = 0
        for folder, path in files:
            with reading_parquet(folder.resolve_paths(path)), folder.open(path, "rb") as f:
                meta = pq.ParquetFile(f).metadata
            for g in range(meta.num_row_groups):
                n = meta.row_group(g).num_rows
                groups.append((folder, path, g, offset, n))
                offset += n
        start, stop = row_range(offset, rank, world_size)
        emitted = 0
        for folder, path, g, first, n in groups:
            if first + n <= start or first >= stop:
                continue
            with reading_parquet(folder.resolve_paths(path)), folder.open(path, "rb") as f:
                table = pq.ParquetFile(f, page_checksum_verification=True).read_row_group(g)
            lo, hi = max(start - first, 0), min(stop - first, n)
            for at in range(lo, hi, _PYTHON_ROWS):  # a row group can hold thousands of PRs, diffs and all
                for i, row in enumerate(table.slice(at, min(_PYTHON_ROWS, hi - at)).to_pylist(), start=at):
                    if 0 <= self.limit <= emitted:
                        return
                    doc = self.get_document_from_dict(row, path, i)
                    self.update_doc_stats(doc)
                    emitted += 1
                    yield doc
