"""Pipeline step of the `redact` stage: every Sample redacted (`datakit.redact.samples`), or quarantined."""

from __future__ import annotations

from datakit.io.records import as_document
from datakit.pipeline.step import CountingStep
from datakit.redact.samples import RedactReject, redact_sample


class RedactSamples(CountingStep):
    """Unit `samples`: read = written + quarantined (`secret_in_path`, `redaction_breaks_edit`,
    `redaction_breaks_diff`, `redaction_breaks_chat`, `redaction_incomplete`, `unreadable_sample`,
    `internal_error`). Counts `redact.samples_redacted`, `redact.secrets.<kind>` (distinct secrets replaced, per
    sample, added up) and `redact.examples_kept.<kind>` (documented examples left as they are)."""

    name = "🔒 redact"
    type = "✂️ - FORMATTER"

    def __init__(self, quarantine_dir: str):
        super().__init__("redact", quarantine_dir)

    def run(self, data, rank: int = 0, world_size: int = 1):
        try:
            for doc in data:
                sample = doc.metadata
                self.read("samples")
                with self.track_time():
                    try:
                        out, red = redact_sample(sample)
                    except RedactReject as exc:
                        self.reject("samples", sample, exc.reason, str(exc), rank)
                        continue
                    except Exception as exc:  # a bug must not lose the record
                        self.reject("samples", sample, "internal_error", f"{type(exc).__name__}: {exc}", rank)
                        continue
                    if red.counts:
                        self.stat_update("redact.samples_redacted")
                    for kind, n in sorted(red.counts.items()):
                        self.stat_update(f"redact.secrets.{kind}", value=n)
                    for kind, n in sorted(red.examples.items()):
                        self.stat_update(f"redact.examples_kept.{kind}", value=n)
                self.written("samples")
                yield as_document(out, "text")
        finally:
            self.close_outputs()
