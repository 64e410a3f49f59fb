"""Keep huggingface_hub out of processes that never touch the Hub (two of datatrove's top-level imports).

1. `datatrove.io` (imported by every datatrove reader, writer and executor, so by every stage's process and worker)
does `from huggingface_hub import HfFileSystem` at its top, for one `isinstance` in `DataFolder.list_files` (a
listing option for `hf://` folders). That import brings `hf_api`, `hf_file_system` and httpx: 0.2–0.45 CPU s in
every process. While `datatrove.io` is being imported, `huggingface_hub.HfFileSystem` is `HfFileSystemStandIn`,
whose `isinstance` is True exactly for instances of a class with huggingface_hub's real `HfFileSystem` in its
MRO, and which imports the real class only when an object of a huggingface_hub class is checked. Afterwards the
attribute is removed again, so `from huggingface_hub import HfFileSystem` anywhere else gets the real class (its
lazy module `__getattr__`), and `hf://` paths go through fsspec, which imports the real class by name.

2. `datatrove.pipeline.readers` and `datatrove.pipeline.writers` are packages whose `__init__` only re-exports its
   submodules' classes (`from .parquet import ParquetReader`, …), among them the Hub reader and writers, whose
   modules import `huggingface_hub`'s commit API and `hf_api` (~0.6 CPU s): importing datatrove's Parquet writer
   ran them. Their `__init__` is read (`ast`) and, when it is only such `from .sub import Name` lines, replaced by a
   module `__getattr__` that imports `.sub` when `Name` is first used: the same names, each from the same module.
   An `__init__` of any other shape is run as it is.

3. `datatrove.executor` is such a package too (its `__init__` imports the jobs, Slurm and Ray executors, and with
   them dill), and `multiprocess` (imported by datatrove's local executor module, ~15 ms with dill) is loaded by
   `importlib.util.LazyLoader`: the module runs when one of its attributes is first used — by the local executor
   only when it starts a pool — so a 1-worker run never imports multiprocess or dill.

Installed by `import datakit` (a meta-path hook on these names only); a process that imported
`huggingface_hub.hf_file_system` first gets datatrove.io's import unchanged.
"""

from __future__ import annotations

import ast
import importlib
import importlib.abc
import importlib.util
import sys

MODULE = "datatrove.io"
LAZY_PACKAGES = ("datatrove.pipeline.readers", "datatrove.pipeline.writers", "datatrove.executor")
LAZY_MODULES = ("multiprocess",)  # run when an attribute is first used (importlib.util.LazyLoader)


def _real_hf_file_system():
    from huggingface_hub.hf_file_system import HfFileSystem

    return HfFileSystem


class _StandInMeta(type):
    def __instancecheck__(cls, obj) -> bool:
        return cls.__subclasscheck__(type(obj))

    def __subclasscheck__(cls, sub) -> bool:
        if not any((getattr(c, "__module__", None) or "").startswith("huggingface_hub") for c in sub.__mro__):
            return False  # no huggingface_hub class in its MRO: cannot be an HfFileSystem
        return issubclass(sub, _real_hf_file_system())


class HfFileSystemStandIn(metaclass=_StandInMeta):
    """What `datatrove.io` binds as `HfFileSystem` (see the module docstring); calling it makes the real one."""

    def __new__(cls, *args, **kwargs):
        return _real_hf_file_system()(*args, **kwargs)


class _WrappingLoader(importlib.abc.Loader):
    """The module's own loader, with `exec_module` changed by the subclass."""

    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)


class _HubDeferringLoader(_WrappingLoader):
    def exec_module(self, module) -> None:
        import huggingface_hub

        if "huggingface_hub.hf_file_system" in sys.modules or "HfFileSystem" in vars(huggingface_hub):
            self.loader.exec_module(module)  # already paid for: nothing to defer
            return
        huggingface_hub.HfFileSystem = HfFileSystemStandIn
        try:
            self.loader.exec_module(module)
        finally:
            if vars(huggingface_hub).get("HfFileSystem") is HfFileSystemStandIn:
                del huggingface_hub.HfFileSystem


def _reexports(source: str) -> dict[str, str] | None:
    """{name: submodule} when `source` is only `from .submodule import name, …` statements, else None."""
    exports = {}
    for node in ast.parse(source).body:
        if not (isinstance(node, ast.ImportFrom) and node.level == 1 and node.module and "." not in node.module):
            return None
        for alias in node.names:
            if alias.name == "*":
                return None
            exports[alias.asname or alias.name] = node.module
    return exports


class _LazyPackageLoader(_WrappingLoader):
    def exec_module(self, module) -> None:
        origin = getattr(module.__spec__, "origin", None)
        try:
            with open(origin, encoding="utf-8") as f:
                exports = _reexports(f.read())
        except (OSError, TypeError, SyntaxError, ValueError):
            exports = None
        if not exports:
            self.loader.exec_module(module)
            return
        name = module.__name__

        def __getattr__(attr: str):
            if attr not in exports:
                raise AttributeError(f"module {name!r} has no attribute {attr!r}")
            value = getattr(importlib.import_module(f"{name}.{exports[attr]}"), attr)
            setattr(module, attr, value)
            return value

        module.__getattr__ = __getattr__
        module.__all__ = list(exports)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != MODULE and fullname not in LAZY_PACKAGES and fullname not in LAZY_MODULES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    if fullname in LAZY_MODULES:
                        spec.loader = importlib.util.LazyLoader(spec.loader)
                    else:
                        spec.loader = (_HubDeferringLoader if fullname == MODULE else _LazyPackageLoader)(spec.loader)
                return spec
        return None


def install() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
