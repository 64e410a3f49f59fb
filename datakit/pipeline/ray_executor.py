"""Ray: datatrove's RayPipelineExecutor, with each task run in its Ray worker process.

datatrove's RankWorker actor runs its ranks in a `multiprocess` pool child. When that child is SIGKILLed (the OOM
killer picks the process doing the work) the pool's map waits for its result forever: the run hangs, neither
retried nor failed (tests/test_ray_kill.py). Run in the actor itself, a killed task is a dead actor, which
datatrove resubmits (up to 3 times; after that the runner's completion check fails the stage, naming the missing
tasks). A multi-rank job (tasks_per_job > 1) keeps datatrove's pool.
"""

from __future__ import annotations

import os
import random
import time

from datatrove.executor import ray as datatrove_ray
from datatrove.executor.ray import RankWorker, RayPipelineExecutor


class InProcessRankWorker(RankWorker):
    def run_for_rank(self, executor_ref, ranks, node_ips, node_idx):
        if len(ranks) != 1:
            return super().run_for_rank(executor_ref, ranks, node_ips, node_idx)
        os.environ["RAY_NODELIST"] = ",".join(node_ips)  # what datatrove's pool wrapper sets, then its rank
        os.environ["RAY_NODEID"] = str(node_idx)
        time.sleep(random.randint(0, executor_ref.randomize_start_duration))
        node_rank = -1 if executor_ref.nodes_per_task == 1 else node_idx
        return executor_ref._run_for_rank(ranks[0], 0 if executor_ref.log_first else 1, node_rank=node_rank)


class RayExecutor(RayPipelineExecutor):
    def run(self):
        # datatrove's task manager creates `RankWorker` actors by its module-level name: ours for this run only
        saved, datatrove_ray.RankWorker = datatrove_ray.RankWorker, InProcessRankWorker
        try:
            return super().run()
        finally:
            datatrove_ray.RankWorker = saved
