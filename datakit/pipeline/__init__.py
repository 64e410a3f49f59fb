"""What every datakit stage shares: the step base with unit counters, and the stage summary."""

from datakit.pipeline import logs as _logs

_logs.install()
