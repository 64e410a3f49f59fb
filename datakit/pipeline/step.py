"""The base of datakit's pipeline steps: a datatrove `PipelineStep` that counts per *unit* and owns a quarantine.

Counters are datatrove stats named `{unit}.read`, `{unit}.written`, `{unit}.quarantined.{reason}` (a failure:
the record is copied to `quarantine/`) and `{unit}.filtered.{reason}` (left out by design, e.g. over a budget or a
duplicate; the record is copied to `filtered/` when the step says why in a detail worth keeping); datatrove
saves them per task (`logging_dir/stats/{rank}.json`) and `datakit.pipeline.summary` adds them up, so for every
unit read = written + quarantined + filtered, over all tasks, across resumed runs.
"""

from __future__ import annotations

from datatrove.pipeline.base import PipelineStep

from datakit.io.records import Quarantine
from datakit.io.storage import as_path


class CountingStep(PipelineStep):
    def __init__(self, stage: str, quarantine_dir: str):
        super().__init__()
        self.stage = stage
        self.quarantine = Quarantine(quarantine_dir, stage)
        self.filtered = Quarantine(str(as_path(quarantine_dir).parent / "filtered"), stage)

    def read(self, unit: str) -> None:
        self.stat_update(f"{unit}.read")

    def written(self, unit: str) -> None:
        self.stat_update(f"{unit}.written")

    def filter_out(self, unit: str, reason: str, value: int = 1, record: dict | None = None, detail: str = "",
                   rank: int = 0) -> None:
        """Left out by design (a budget, a sampling rate, a duplicate), not by failure: counted, and copied to
        `filtered/` with its detail when `record` is given."""
        if record is not None:
            self.filtered.put(record, reason, detail, rank)
        self.stat_update(f"{unit}.filtered.{reason}", value=value)

    def reject(self, unit: str, record: dict, reason: str, detail: str, rank: int, role: str | None = None) -> None:
        self.quarantine.put(record, reason, detail, rank, role=role)
        self.stat_update(f"{unit}.quarantined.{reason}")

    def close_outputs(self) -> None:
        self.quarantine.close()
        self.filtered.close()
