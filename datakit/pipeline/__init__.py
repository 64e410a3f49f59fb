"""What every datakit stage shares: the step base with unit counters, and the stage summary."""

from datakit.pipeline import logs as _logs
from datakit.pipeline import workers as _workers

_logs.install()
_workers.fast_dependency_checks()
