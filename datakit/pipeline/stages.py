"""The stage registry: what a recipe's `stage:` names, with its options, turned into a list of PipelineSteps.

A stage type declares its options as a dataclass (defaults = documented defaults) and either builds datatrove
steps (`build`) or, for the few local set-up stages, does its work directly (`run_local`).
"""

from __future__ import annotations

import dataclasses
import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar

from datatrove.pipeline.base import PipelineStep

from datakit.sources.github.settings import CrawlSettings


@dataclass
class StageContext:
    """Everything a stage needs from the recipe, resolved: paths are absolute."""

    name: str
    output: Path  # this stage's output folder
    input: Path | None  # a previous stage's output folder, or a path from the recipe
    root: Path  # the recipe's output root
    mirrors: Path  # where git mirrors live (shared by sources and samples)
    limit: int = -1
    fingerprint: str | None = None
    tasks: int = 1  # the stage's task count
    # (pipeline, tasks, logging_dir) → an executor of the recipe's kind, for a stage that runs a phase of its own
    # before the runner's pipeline (sources.gharchive's map); None: a local one
    phase_executor: Callable[[list, int, Path], Any] | None = None
    executor_kind: str = "local"
    inputs: list = field(default_factory=list)  # every input folder/path, `input` first (see StageType.multi_input)
    sample_repos: int = -1  # ≥ 0: source stages read only their first N repositories (`datakit plan`'s sample run)

    @property
    def quarantine(self) -> str:
        return str(self.output / "quarantine")


class StageType:
    """Subclass per stage. `Options` is a dataclass; unknown keys are a recipe error."""

    type_name: ClassVar[str]
    summary: ClassVar[str]
    needs_input: ClassVar[bool] = True
    local_only: ClassVar[bool] = False  # runs in-process, no executor (set-up work, e.g. the demo repository)
    # the modules of its steps: datatrove's forkserver imports them once for all the workers (pipeline/workers.py)
    worker_modules: ClassVar[tuple[str, ...]] = ()
    multi_input: ClassVar[bool] = False  # reads every path of `ctx.inputs` (a recipe's `inputs:` list)
    units: ClassVar[tuple[str, ...]] = ()
    input_format: ClassVar[str] = ""  # "parquet": inputs are folders of record files, checked before build
    object_storage: ClassVar[bool] = False  # inputs and output may be fsspec URLs (s3://…; datakit.io.storage)
    mirrors: ClassVar[bool] = False  # reads the git mirrors (which stay local: pygit2)
    # sample kinds written (datakit.tokens.mixture.SOURCE_BY_KIND's keys); "inputs": its inputs' (a filter);
    # None: not declared (a mixture source is then not checked against what the recipe makes)
    produces: ClassVar[tuple[str, ...] | str | None] = None

    @dataclass
    class Options:
        pass

    def __init__(self, options: Any):
        self.options = options

    def check(self, recipe: Any = None, spec: Any = None) -> None:
        """Option *values* (enumerations, ranges, names the recipe must hold), checked when the recipe loads so
        `--check` catches them and no stage runs first. Raises ValueError("option: what is wrong (what to do)");
        `recipe`/`spec` (datakit.recipe) may be None for a stage checked on its own."""

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        raise NotImplementedError

    def run_local(self, ctx: StageContext) -> dict[str, dict]:
        raise NotImplementedError

    def finalize(self, ctx: StageContext, units: dict[str, dict]) -> None:
        """Runs once after every task has completed (e.g. to write a manifest over all shards)."""

    def uses_mirrors(self) -> bool:
        return self.mirrors

    @classmethod
    def option_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls.Options)]


def check_choices(option: str, values, known) -> None:
    """ValueError naming the values not in `known`, the known ones and the closest, for a typo."""
    import difflib

    known = list(known)
    for value in [values] if isinstance(values, str) else values:
        if value not in known:
            close = difflib.get_close_matches(str(value), [str(k) for k in known], n=1)
            raise ValueError(f"{option}: unknown {value!r} (known: {', '.join(map(str, known))})"
                             + (f"; did you mean {close[0]!r}?" if close else ""))


def check_at_least(options: Any, names: tuple[str, ...], low: int) -> None:
    for name in names:
        if getattr(options, name) < low:
            raise ValueError(f"{name} must be ≥ {low}, got {getattr(options, name)}")


# ---------------------------------------------------------------------------------------------------- the stages


class DemoRepoStage(StageType):
    type_name = "demo.repo"
    summary = "build the embedded demo git repository (offline, deterministic) and a repos.txt naming it"
    needs_input = False
    local_only = True
    units = ("repos",)

    @dataclass
    class Options:
        also_as: list = field(default_factory=list)  # list the same repository under these names too

    def run_local(self, ctx: StageContext) -> dict[str, dict]:
        from datakit.demo.build_repo import DEMO_REPO_NAME, build_demo_repo

        path = build_demo_repo(ctx.output)
        names = [DEMO_REPO_NAME, *self.options.also_as]
        (ctx.output / "repos.txt").write_text("".join(f"{n} {path}\n" for n in names), encoding="utf-8")
        return {"repos": {"read": 1, "written": 1, "quarantined": {}, "filtered": {}}}


def repo_specs(extra: list, ctx: StageContext):
    """The repositories of a source stage: its `repos` option plus its input, a repos.txt ("owner/name
    [url-or-path]" per line, # comments) or a folder holding one."""
    from datakit.sources.git_mirror import RepoSpec

    lines = list(extra)
    if ctx.input is not None:
        path = ctx.input / "repos.txt" if ctx.input.is_dir() else ctx.input
        lines += [ln for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip() and not ln.startswith("#")]
    specs = [RepoSpec.parse(ln) for ln in lines]
    return specs[:ctx.sample_repos] if ctx.sample_repos >= 0 else specs


class GitSourceStage(StageType):
    type_name = "sources.git"
    worker_modules = ("datakit.sources.steps",)
    summary = "mirror repositories with pygit2 and list their merged PRs as PullRecords"
    units = ("repos", "pulls")
    mirrors = True
    object_storage = True  # its output (the mirrors and a repos.txt input stay local)

    @dataclass
    class Options:
        repos: list = field(default_factory=list)  # "owner/name [url-or-path]" entries, added to the input file's
        fetch: bool = True  # False: use the mirrors already on disk
        include_unmerged: bool = False  # pull refs never merged: quarantined ("unmerged") unless True

    needs_input = False  # `input` is optional: a repos.txt file, or a folder holding one

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        from datakit.io.records import RecordWriter
        from datakit.sources.steps import GitPullsSource

        return [
            GitPullsSource(repo_specs(self.options.repos, ctx), str(ctx.mirrors), ctx.quarantine, fetch=self.options.fetch,
                           include_unmerged=self.options.include_unmerged, limit=ctx.limit),
            RecordWriter(str(ctx.output), "pull_record"),
        ]

    def finalize(self, ctx: StageContext, units: dict[str, dict]) -> None:
        repos = units.get("repos", {})
        if repos.get("read") and not repos.get("written"):  # nothing could be mirrored: not an empty success
            from datakit.pipeline.runner import StageFailed

            raise StageFailed(f"stage {ctx.name}: every repository failed ({repos['read']}: not mirrored, or its "
                              f"history unreadable); the reasons are in {ctx.quarantine}")


@dataclass
class _GitHubOptions(CrawlSettings):
    repos: list = field(default_factory=list)  # "owner/name [git-url-or-path]" entries, added to the input file's
    state: str = ""  # checkpoints, journals and the HTTP cache (default <output root>/github_state); kept by --force


class GitHubSourceStage(StageType):
    type_name = "sources.github"
    worker_modules = ("datakit.sources.github.steps",)
    summary = ("crawl GitHub's REST + GraphQL API (token pool, rate limits, retries, ETags, checkpoints) → "
               "PullRecords with linked issues; the code from git mirrors")
    units = ("repos", "pulls")
    needs_input = False  # `input` is optional: a repos.txt, or a folder holding one
    mirrors = True
    Options = _GitHubOptions

    def check(self, recipe: Any = None, spec: Any = None) -> None:
        check_choices("code", self.options.code, ("mirror", "api"))
        check_at_least(self.options, ("max_retries", "backoff", "timeout", "max_wait", "secondary_wait"), 0)
        if not 1 <= self.options.page_size <= 100:
            raise ValueError(f"page_size: GitHub pages hold 1 to 100 PRs, got {self.options.page_size}")

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        import dataclasses as dc

        from datakit.io.records import RecordWriter
        from datakit.sources.github.steps import GitHubCrawlSource
        from datakit.sources.github.tokens import TokenPool

        o = self.options
        TokenPool.from_env(o.tokens_env, o.tokens_file or None)  # no token: fail before any task starts
        settings = CrawlSettings(**{f.name: getattr(o, f.name) for f in dc.fields(CrawlSettings)})
        state = Path(o.state).resolve() if o.state else ctx.root / "github_state"
        return [
            GitHubCrawlSource(repo_specs(o.repos, ctx), str(state), str(ctx.mirrors), ctx.quarantine, settings,
                              ctx.limit),
            RecordWriter(str(ctx.output), "pull_record"),
        ]


class GHArchiveSourceStage(StageType):
    type_name = "sources.gharchive"
    worker_modules = ("datakit.sources.steps",)
    summary = ("aggregate GH Archive hour files (PR, issue, comment, review events) → PullRecords; code from mirrors "
               "(two phases: partition by repository, then aggregate)")
    units = ("files", "lines", "pulls")
    needs_input = False  # `input` is optional: a folder of hour files (or one file)
    mirrors = True

    @dataclass
    class Options:
        paths: list = field(default_factory=list)  # hour files (YYYY-MM-DD-H.json.gz), folders of them, or URLs
        repos: list = field(default_factory=list)  # "owner/name [git-url-or-path]": only these (all when empty)
        fetch: bool = True  # mirrors: clone/fetch (False: use the mirrors on disk)
        skip_bots: bool = True

    def hour_files(self, ctx: StageContext) -> list[str]:
        paths = list(self.options.paths) + ([str(ctx.input)] if ctx.input is not None else [])
        files: list[str] = []
        for p in paths:
            if "://" in p:
                files.append(p)
            elif Path(p).is_dir():
                files += sorted(str(f) for f in Path(p).glob("*.json.gz"))
            elif Path(p).is_file():
                files.append(str(Path(p).resolve()))
            else:
                raise ValueError(f"paths: {p} does not exist")
        if not files:
            raise ValueError("no GH Archive hour files (*.json.gz) in paths/input")
        return files

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        """Two phases, each a datatrove pipeline of `tasks` tasks: the map (run here, before the runner's
        pipeline; its completion markers make a rerun skip it) partitions the hour files' wanted lines by
        repository; the reduce (returned: the runner's pipeline) aggregates one partition per task. Every input
        byte is read by one task (see datakit/sources/gharchive.py)."""
        from datakit.io.records import RecordWriter
        from datakit.sources.git_mirror import RepoSpec
        from datakit.sources.steps import GHArchivePartition, GHArchiveSource

        files = self.hour_files(ctx)
        specs = [RepoSpec.parse(r) for r in self.options.repos]
        parts = ctx.output / ".datakit" / "map"
        run_phase(ctx, [GHArchivePartition(files, [s.name for s in specs], str(parts / "parts"), ctx.tasks)],
                  parts / "logs", "map")
        return [
            GHArchiveSource(str(parts / "parts"), specs, str(ctx.mirrors), ctx.quarantine, self.options.fetch,
                            self.options.skip_bots, ctx.limit),
            RecordWriter(str(ctx.output), "pull_record"),
        ]

    def finalize(self, ctx: StageContext, units: dict[str, dict]) -> None:
        """The partitions were read by every reduce task: drop them (their files.json and the markers stay)."""
        for part in (ctx.output / ".datakit" / "map" / "parts").glob("*/*.jsonl.gz"):
            part.unlink()


def run_phase(ctx: StageContext, pipeline: list[PipelineStep], logging_dir: Path, what: str) -> None:
    """Run a stage's own datatrove pipeline of `ctx.tasks` tasks to completion, on the recipe's executor (every
    executor's run() returns when its tasks ended: datakit's Slurm one waits for its job array)."""
    if ctx.phase_executor is not None:
        executor = ctx.phase_executor(pipeline, ctx.tasks, logging_dir)
    else:
        from datatrove.executor import LocalPipelineExecutor

        executor = LocalPipelineExecutor(pipeline, tasks=ctx.tasks, workers=1, logging_dir=str(logging_dir))
    executor.run()
    done = logging_dir / "completions"
    missing = ctx.tasks - (sum(1 for _ in done.iterdir()) if done.is_dir() else 0)
    if missing:
        raise ValueError(f"{what} phase: {missing}/{ctx.tasks} tasks did not complete; see {logging_dir}/logs, "
                         "then rerun to resume")


class AgentlessSamplesStage(StageType):
    type_name = "samples.agentless"
    worker_modules = ("datakit.io.row_shards", "datakit.samples.steps")
    summary = "PullRecords + git mirrors → Agentless BugFixer/TestWriter localize and edit samples"
    units = ("bugfixer", "testwriter")
    multi_input = True  # `inputs: [github, gharchive]`: PullRecord folders read as one sequence
    input_format = "parquet"
    produces = ("localize", "edit")
    mirrors = True
    object_storage = True

    @dataclass
    class Options:
        roles: list = field(default_factory=lambda: ["bugfixer", "testwriter"])
        max_files: int = 10
        max_file_bytes: int = 256 * 1024
        max_prompt_bytes: int = 512 * 1024
        # rendered subtrees kept per repository and task (MiB), 0 disables it; 64 hits as often as 256 did on
        # bench_samples' 5,000-file repository and is full within 200 PRs, so memory does not grow with the input
        structure_cache_mb: int = 64

    def check(self, recipe: Any = None, spec: Any = None) -> None:
        from datakit.samples.agentless import ROLES

        if not self.options.roles:
            raise ValueError(f"roles: empty (give one or both of {', '.join(ROLES)})")
        check_choices("roles", self.options.roles, ROLES)
        check_at_least(self.options, ("max_files", "max_file_bytes", "max_prompt_bytes"), 1)
        check_at_least(self.options, ("structure_cache_mb",), 0)

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        from datakit.io.records import RecordWriter
        from datakit.io.row_shards import RowShardedRecordReader
        from datakit.samples.agentless import Limits
        from datakit.samples.steps import AgentlessSamples

        limits = Limits(self.options.max_files, self.options.max_file_bytes, self.options.max_prompt_bytes)
        return [
            RowShardedRecordReader(str(ctx.input), limit=ctx.limit,  # N tasks share even one repository
                                   extra_folders=[str(p) for p in ctx.inputs[1:]]),
            AgentlessSamples(str(ctx.mirrors), ctx.quarantine, limits, tuple(self.options.roles),
                             self.options.structure_cache_mb),
            RecordWriter(str(ctx.output), "sample"),
        ]


class CommitBundlesStage(StageType):
    type_name = "bundles.commits"
    worker_modules = ("datakit.io.row_shards", "datakit.bundles.steps")
    summary = "PullRecords + git mirrors → one curated commit-bundle document per PR (diffs verified with unidiff)"
    units = ("pulls",)
    multi_input = True
    input_format = "parquet"
    produces = ("commit_bundle",)
    mirrors = True
    object_storage = True

    @dataclass
    class Options:
        max_commits: int = 100
        max_files: int = 100  # distinct files across the bundle's kept diffs
        max_lines: int = 10_000  # added + deleted lines
        max_bytes: int = 1024 * 1024  # the rendered document

    def check(self, recipe: Any = None, spec: Any = None) -> None:
        check_at_least(self.options, ("max_commits", "max_files", "max_lines", "max_bytes"), 1)

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        from datakit.bundles.build import BundleLimits
        from datakit.bundles.steps import CommitBundles
        from datakit.io.records import RecordWriter
        from datakit.io.row_shards import RowShardedRecordReader

        o = self.options
        return [
            RowShardedRecordReader(str(ctx.input), limit=ctx.limit, extra_folders=[str(p) for p in ctx.inputs[1:]]),
            CommitBundles(str(ctx.mirrors), ctx.quarantine, BundleLimits(o.max_commits, o.max_files, o.max_lines,
                                                                         o.max_bytes)),
            RecordWriter(str(ctx.output), "sample"),
        ]


class SynthIngestStage(StageType):
    type_name = "synth.ingest"
    worker_modules = ("datakit.synth.steps",)
    summary = ("synthetic reasoning / agent data (JSONL, .jsonl.zst, Parquet, saved datasets; OpenAI messages, "
               "SWE-agent, mini-SWE-agent, OpenHands, prompt/answer) → validated chat Samples (kind synthetic)")
    units = ("rows",)
    needs_input = False  # `input` is optional: a file or folder, added to `paths`
    produces = ("synthetic",)
    object_storage = True  # its output (its `paths` are local files)

    @dataclass
    class Options:
        paths: list = field(default_factory=list)  # files / folders; "datakit:demo/fixtures/synth" = shipped data
        format: str = "auto"  # auto (by each row's shape) | openai | mini_swe_agent | swe_agent | openhands | prompt_answer
        max_turn_chars: int = 200_000  # a longer turn (content + reasoning + tool arguments) is quarantined
        loader: str = "datakit"  # datakit (streaming readers) | json | parquet (datasets.load_dataset, local files)
        keep_exit_status: list = field(default_factory=list)  # agent runs: keep only these exit statuses ([] = all)

    def check(self, recipe: Any = None, spec: Any = None) -> None:
        from datakit.synth.formats import FORMATS

        check_choices("format", self.options.format, ("auto", *FORMATS))
        check_choices("loader", self.options.loader, ("datakit", "json", "parquet"))
        check_at_least(self.options, ("max_turn_chars",), 1)

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        from datakit.io.records import RecordWriter
        from datakit.synth.readers import list_inputs
        from datakit.synth.steps import SynthIngest

        o = self.options
        inputs = list_inputs(list(o.paths) + ([str(ctx.input)] if ctx.input is not None else []))
        return [
            SynthIngest([str(p) for p in inputs], ctx.quarantine, o.format, o.max_turn_chars, o.loader, ctx.limit,
                        keep_exit_status=tuple(o.keep_exit_status)),
            RecordWriter(str(ctx.output), "sample"),
        ]


class TokensStage(StageType):
    type_name = "tokens"
    worker_modules = ("datakit.tokens.steps",)
    summary = "Samples → exact tokenization (Qwen2.5 by default) with loss masks → mixture → packed Parquet shards"
    units = ("documents",)
    multi_input = True  # `inputs: [decontam, synth, …]`: every Sample folder, interleaved
    input_format = "parquet"
    object_storage = True

    @dataclass
    class Options:
        tokenizer: str = "qwen2.5"  # built-in offline Qwen2.5, or a Hugging Face tokenizer name / local path
        engine: str = "auto"  # auto: the fastest engine proven id-identical (gigatoken, fastokens, tiktoken), else hf
        seq_len: int = 32768
        window: int = 100_000  # chunks packed together (best-fit-decreasing) per window
        # …and at most this many tokens: what a task holds, flat with input size; under-filled rows are carried
        # into the next window, so the padding stays low (0.03 % on the 2 GB benchmark; BENCHMARKS.md, tokens)
        window_tokens: int = 2_000_000
        mixture: dict = field(default_factory=dict)  # {source: {tokens | fraction: budget, upsample: factor}}
        target_tokens: float = 0.0  # the stream's size that mixture fractions refer to (after up-sampling)
        copy_gap: int = 0  # rows between copies of an up-sampled document (0 = the rows of 8 M tokens)
        seed: int = 0
        num_threads: int = 1  # encoder threads per task
        # sample kinds whose documents are never chunked across rows: longer than seq_len → left out (too_long)
        never_split: list = field(default_factory=lambda: ["sft"])
        # held-out split by repository: {fraction: 0.01, seed: 0, repos: [owner/name], without_repo: train|valid}
        validation: dict = field(default_factory=dict)

    def _tokenizer(self):
        from datakit.tokens.tokenizer import load_tokenizer

        return load_tokenizer(self.options.tokenizer, self.options.engine)

    def check(self, recipe: Any = None, spec: Any = None) -> None:
        from datakit.tokens.mixture import SOURCE_BY_KIND, parse_mixture, parse_validation

        o = self.options
        check_at_least(o, ("seq_len", "window", "num_threads"), 1)
        check_at_least(o, ("target_tokens",), 0)
        if o.copy_gap < 0:
            raise ValueError(f"copy_gap must be ≥ 0 (0 = the rows of 8 M tokens), got {o.copy_gap}")
        if o.window_tokens < o.seq_len:
            raise ValueError(f"window_tokens must be ≥ seq_len ({o.seq_len}), got {o.window_tokens}")
        mixture = parse_mixture(o.mixture, o.target_tokens)
        # a misspelled source would otherwise match no document: its up-sampling silently skipped
        check_choices("mixture", list(mixture), sorted(set(SOURCE_BY_KIND.values())))
        check_choices("never_split", o.never_split, SOURCE_BY_KIND)
        parse_validation(o.validation)
        kinds = recipe.input_kinds(spec) if recipe is not None else None
        made = {SOURCE_BY_KIND[k] for k in kinds or () if k in SOURCE_BY_KIND}
        for name in mixture if kinds is not None else ():
            if name not in made:
                raise ValueError(f"mixture.{name}: no input of this stage makes {name} samples (they make: "
                                 f"{', '.join(sorted(made)) or 'none'}); add the stage that does to `inputs:` "
                                 f"or drop mixture.{name}")

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        from datakit.io.records import RecordReader
        from datakit.tokens.mixture import parse_mixture, parse_validation
        from datakit.tokens.steps import SAMPLE_COLUMNS, InterleavedRecordReader, PackShards, TokenizeSamples

        o = self.options
        mixture = parse_mixture(o.mixture, o.target_tokens)
        validation = parse_validation(o.validation)
        tok = self._tokenizer()  # fails here, before any work, on an unknown tokenizer
        if ctx.executor_kind == "local":  # tasks may run in this process: the engine builds while the executor starts
            tok.prefetch()
        inputs = ctx.inputs or [ctx.input]
        # batches of 256 records (datatrove's 1,000): a batch's texts are what the reader holds at once (2 GB stage's
        # peak RSS −20 MiB; BENCHMARKS.md, tokens, eighth pass)
        # and only the columns the stage uses (a rejected sample's record is read whole again for its quarantine)
        reading = {"text_field": "text", "limit": ctx.limit, "text_as_bytes": True, "batch_size": 256,
                   "columns": list(SAMPLE_COLUMNS)}
        reader = (RecordReader(str(inputs[0]), **reading) if len(inputs) == 1 else
                  InterleavedRecordReader([str(p) for p in inputs], **reading))
        return [
            reader,
            TokenizeSamples(o.tokenizer, o.engine, ctx.quarantine, mixture, o.seed, o.num_threads, o.seq_len,
                            tuple(o.never_split), validation),
            PackShards(str(ctx.output), o.seq_len, tok.eod_id, o.window, o.copy_gap or None, o.window_tokens,
                       validation.enabled),
        ]

    def finalize(self, ctx: StageContext, units: dict[str, dict]) -> None:
        import json

        from datakit.tokens.mixture import parse_mixture, parse_validation
        from datakit.tokens.shards import write_manifest, write_valid_manifest

        o, tok = self.options, self._tokenizer()
        parts = [json.loads(p.read_text()) for p in sorted(ctx.output.glob("*.pack.json"))]
        shards = sorted(p.name for p in ctx.output.glob("*.parquet"))
        validation = parse_validation(o.validation)
        extra = ({"split": "train", "validation": write_valid_manifest(ctx.output, tok, o.seq_len, validation,
                                                                      ctx.fingerprint)}
                 if validation.enabled else None)
        write_manifest(ctx.output, shards, tok, o.seq_len, parts, parse_mixture(o.mixture, o.target_tokens),
                       ctx.fingerprint, extra=extra)


class MegatronExportStage(StageType):
    type_name = "export.megatron"
    worker_modules = ("datakit.export.steps",)
    summary = ("token shards → Megatron MMIDIDX .bin/.idx (int32, one document per sample) + blend file; a "
               "validation split → valid/*.bin/.idx + valid_blend.txt (--valid-data-path)")
    units = ("shards",)
    object_storage = True

    @dataclass
    class Options:
        pass

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        from datakit.export.steps import MegatronExport
        from datakit.tokens.shards import verify_manifest

        manifest = verify_manifest(ctx.input)  # refuse shards that changed since their manifest, before any output
        from datakit.export.megatron import check_vocab_fits

        check_vocab_fits(manifest["tokenizer"]["vocab_size"], "int32")
        shards = [str(ctx.input / name) for name in sorted(manifest["files"])]
        valid = []
        if manifest.get("validation"):
            vdir = (ctx.input / manifest["validation"]["manifest"]).parent
            valid = [str(vdir / name) for name in sorted(verify_manifest(vdir)["files"])]
        return [MegatronExport(shards, str(ctx.output), valid)]

    def finalize(self, ctx: StageContext, units: dict[str, dict]) -> None:
        import json

        from datakit.export.steps import write_folder_blend
        from datakit.tokens.shards import VALID_DIR, file_sha256, verify_manifest

        source = verify_manifest(ctx.input)
        train = write_folder_blend(ctx.output, ctx.output / "blend.txt")
        manifest = {**source, "format": "megatron-mmidx", "files": train["files"], "documents": train["documents"],
                    "tokens": train["tokens"], "source_manifest": file_sha256(ctx.input / "manifest.json")}
        if source.get("validation"):
            # its own dataset for --valid-data-path; per_split.json is the same for --per-split-data-args-path
            valid = write_folder_blend(ctx.output / VALID_DIR, ctx.output / "valid_blend.txt", required=False)
            manifest["validation"] = {**source["validation"], **valid,
                                      "files": {f"{VALID_DIR}/{k}": v for k, v in valid["files"].items()}}
            split_words = {"train": (ctx.output / "blend.txt").read_text().split(), "test": None,
                           "valid": (ctx.output / "valid_blend.txt").read_text().split() if valid["blend"] else None}
            (ctx.output / "per_split.json").write_text(json.dumps(split_words, indent=2) + "\n")
        (ctx.output / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


class DecontamStage(StageType):
    type_name = "decontam"
    worker_modules = ("datakit.decontam.steps",)
    summary = "drop SWE-bench Verified leakage (repos, renames, forks, mirrors, commits, text overlap) into a quarantine"
    units = ("samples",)
    multi_input = True  # `inputs: [samples, bundles, synth]`: every kind of sample is decontaminated
    input_format = "parquet"
    produces = "inputs"  # a filter
    object_storage = True

    @dataclass
    class Options:
        index: str = ""  # a fingerprint index file; "" = the one shipped with datakit (SWE-bench Verified)
        threshold: float = -1.0  # text rule: fraction of a reference item's n-grams; < 0 = the documented default
        min_matched: int = -1  # text rule: matched n-grams that suffice on their own; < 0 = the default
        text_rules: bool = True
        mirrors: bool = True  # mirror rules (git histories); False = off, recorded in stats.json and the audit
        roots: str = ""  # extra root commits (a `datakit decontam build-roots` file), added to the shipped ones

    def uses_mirrors(self) -> bool:
        return self.options.mirrors

    def _check_mirrors(self, ctx: StageContext) -> None:
        """Fail closed: samples from git mirrors need the mirrors, unless the rules are turned off explicitly."""
        import pyarrow.parquet as pq

        from datakit.decontam.steps import MIRROR_KINDS, mirror_status
        from datakit.io.storage import arrow, as_path

        problem = mirror_status(str(ctx.mirrors))
        if problem is None:
            return
        for path in [p for folder in (ctx.inputs or [ctx.input]) for p in sorted(as_path(folder).glob("*.parquet"))]:
            src, fs = arrow(path)
            names = pq.read_schema(src, filesystem=fs).names
            if "source" not in names:
                continue
            table = pq.read_table(src, columns=["source"], filesystem=fs)
            kinds = table.column("source").combine_chunks().field("kind")
            if any(k in MIRROR_KINDS for k in kinds.to_pylist()):
                raise ValueError(f"decontam: samples in {path} came from git mirrors but the mirror rules cannot "
                                 f"run ({problem}); pass --mirrors DIR (recipe: mirrors), or --no-mirror-rules "
                                 "(recipe: options.mirrors: false) to record in stats and audit that they were off")

    def build(self, ctx: StageContext) -> list[PipelineStep]:
        from datakit.decontam.index import FingerprintIndex, default_index
        from datakit.decontam.repos import reference_root_commits
        from datakit.decontam.steps import DecontamFilter

        o = self.options
        FingerprintIndex.load(o.index) if o.index else default_index()  # fail early
        reference_root_commits(o.roots or None)
        if o.mirrors:
            self._check_mirrors(ctx)
        return [
            DecontamFilter([str(p) for p in ctx.inputs or [ctx.input]], str(ctx.output), ctx.quarantine,
                           str(ctx.output / "matches"),
                           o.index or None, str(ctx.mirrors) if o.mirrors else None,
                           o.threshold if o.threshold >= 0 else None, o.min_matched if o.min_matched >= 0 else None,
                           o.text_rules, mirror_rules=o.mirrors, roots_file=o.roots or None, limit=ctx.limit),
        ]

    def finalize(self, ctx: StageContext, units: dict[str, dict]) -> None:
        """decontam.json: the effective settings (decision rule, mirror rules, root commits), for the audit."""
        import json

        from datakit.decontam.content import DEFAULT_MIN_MATCHED, DEFAULT_THRESHOLD
        from datakit.decontam.index import FingerprintIndex, default_index
        from datakit.decontam.repos import reference_root_commits, repos_without_roots

        o = self.options
        index = FingerprintIndex.load(o.index) if o.index else default_index()
        threshold = o.threshold if o.threshold >= 0 else DEFAULT_THRESHOLD
        min_matched = o.min_matched if o.min_matched >= 0 else DEFAULT_MIN_MATCHED
        settings = {"index": o.index or "shipped:swebench_verified", "n": index.n,
                    "threshold": threshold, "min_matched": min_matched,
                    "decision_rule": f"a text matches a reference item when score = matched distinct {index.n}-grams "
                                     f"/ the item's {index.n}-grams >= {threshold} OR matched distinct "
                                     f"{index.n}-grams >= {min_matched}",
                    "text_rules": o.text_rules, "mirrors": o.mirrors, "mirror_rules": o.mirrors,
                    "mirrors_dir": str(ctx.mirrors) if o.mirrors else None, "roots": o.roots or None,
                    "repos_without_roots": repos_without_roots(reference_root_commits(o.roots or None))}
        (ctx.output / "decontam.json").write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")


STAGES: dict[str, type[StageType]] = {
    s.type_name: s
    for s in (DemoRepoStage, GitSourceStage, GitHubSourceStage, GHArchiveSourceStage, AgentlessSamplesStage,
              CommitBundlesStage, DecontamStage, SynthIngestStage, TokensStage, MegatronExportStage)
}


def register(cls: type[StageType]) -> type[StageType]:
    """A stage package declares its stage types in its own `stages` module and registers each with this decorator,
    so this module needs no import of the package (only its name in STAGE_MODULES)."""
    if cls.type_name in STAGES and STAGES[cls.type_name] is not cls:
        raise ValueError(f"two stage types named {cls.type_name!r}")
    STAGES[cls.type_name] = cls
    return cls


STAGE_MODULES = ("datakit.sft.stages", "datakit.dedup.stages", "datakit.redact.stages")  # packages whose stage
# types register themselves

for _module in STAGE_MODULES:
    importlib.import_module(_module)
