"""datatrove's local executor with the driver process as one of its workers.

datatrove runs `workers` ≥ 2 tasks at a time in a pool of `workers` forkserver children while the driver only
waits (each child first waits for the forkserver's imports, then unpickles its task), and it starts a
`multiprocess.Manager` process to hand out local ranks, for one worker too. Here the pool has `workers − 1`
children and the driver runs tasks itself from the moment its own start-up is done (it has imported everything
already; the pool is created in a thread, since creating it waits for the forkserver); no Manager. Tasks are
handed out one at a time, in rank order, to whichever of the driver and the children is free. Which process runs
a task changes nothing in its output: a task's files depend only on its rank and the task count.
"""

from __future__ import annotations

import threading
from collections import deque
from copy import copy, deepcopy

from datatrove.executor import LocalPipelineExecutor
from datatrove.utils.logging import logger
from datatrove.utils.stats import PipelineStats

from datakit.pipeline.runner import WorkerDied


def _dead_children(pool, seen: set) -> list:
    """The pool's worker processes that have ended with a failure. multiprocess's Pool keeps them in `_pool`
    (private) and replaces a dead one within ~0.1 s, and the task it ran is lost: its callback never comes, so
    waiting for it would never end. Every worker seen stays in `seen`, whose exit code outlives the pool's list."""
    seen.update(getattr(pool, "_pool", ()))
    return [p for p in seen if p.exitcode not in (None, 0)]


def _exit_reason(code: int) -> str:
    """How a process ended, from its exit code (negative: the signal that killed it)."""
    if code < 0:
        import signal

        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}" + (", as the out-of-memory killer does" if -code == signal.SIGKILL else "")
    return f"ended with exit status {code}"


def _run_rank(executor: LocalPipelineExecutor, rank: int) -> PipelineStats:
    return executor._run_for_rank(rank, local_rank=1)  # local_rank only names a console-logging slot


class LocalExecutor(LocalPipelineExecutor):
    def run(self):
        if self.depends is not None:  # datatrove's own path runs the dependency first
            return super().run()
        self._launched = True
        todo = deque(self.get_incomplete_ranks(range(self.local_rank_offset,
                                                     self.local_rank_offset + self.local_tasks)))
        if not todo:
            logger.info(f"Not doing anything as all {self.local_tasks} tasks have already been completed.")
            return None
        self.save_executor_as_json()
        pipeline = self.pipeline
        shipped = copy(self)  # what the children unpickle: never touched again, so the pool may pickle it any time
        shipped.pipeline = pipeline
        stats: list[PipelineStats] = []
        failures: list[BaseException] = []
        running = 0
        changed = threading.Condition()
        children = min(self.workers, len(todo)) - 1  # 0: every task in the driver, one after the other
        pool = None

        seen: set = set()  # every pool worker that may have taken a task (see `_dead_children`)

        def submit():  # with `changed` held
            nonlocal running
            if todo and not failures:
                seen.update(getattr(pool, "_pool", ()))  # the worker that takes it is one of these
                running += 1
                pool.apply_async(_run_rank, (shipped, todo.popleft()), callback=finished, error_callback=failed)

        def finished(result):  # the pool's result thread
            nonlocal running
            with changed:
                stats.append(result)
                running -= 1
                submit()
                changed.notify_all()

        def failed(exc):
            nonlocal running
            with changed:
                failures.append(exc)
                running -= 1
                changed.notify_all()

        def start_pool():
            nonlocal pool
            try:
                created = ctx.Pool(children)
            except BaseException as exc:  # noqa: BLE001 - raised by the driver, after its task
                with changed:
                    failures.append(exc)
                return
            with changed:
                pool = created
                for _ in range(children):
                    submit()

        # in a thread: creating the pool waits until the forkserver has imported the workers' modules; the driver
        # starts its first task meanwhile
        starter = threading.Thread(target=start_pool, name="datakit-pool-start", daemon=True)
        try:
            if children:
                # here, not at the top: with no child, multiprocess (and dill) never load (datakit/_lazy_imports.py)
                import multiprocess

                ctx = multiprocess.get_context(self.start_method)
                starter.start()
            while True:  # the driver's share: the next rank no child has taken
                with changed:
                    if not todo or failures:
                        break
                    rank = todo.popleft()
                self.pipeline = deepcopy(pipeline)  # steps keep state (stats, open files): a fresh copy per task
                result = self._run_for_rank(rank)
                with changed:
                    stats.append(result)
            if children:
                starter.join()
            with changed:
                while running and not failures:
                    changed.wait(timeout=0.5)
                    dead = _dead_children(pool, seen) if running and pool is not None else []
                    if dead:
                        failures.append(WorkerDied(
                            f"a worker process {_exit_reason(dead[0].exitcode)} in the middle of a task, which is "
                            "not done: give the stage more memory or fewer workers (--workers), then rerun the same "
                            "command to resume (finished tasks are kept)"))
        finally:
            if children:
                starter.join()
                if pool is not None:  # as datatrove's `with Pool()`: a failed task stops the others
                    pool.terminate()
                    pool.join()
            self.pipeline = pipeline
        if failures:
            raise failures[0]
        merged = sum(stats, start=PipelineStats())
        with self.logging_dir.open("stats.json", "wt") as statsfile:
            merged.save_to_disk(statsfile)
        logger.success(merged.get_repr(f"All {self.local_tasks} tasks"))
        return merged
