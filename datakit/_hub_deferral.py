"""Keep huggingface_hub's file system out of processes that never touch `hf://`.

`datatrove.io` (imported by every datatrove reader, writer and executor, so by every stage's process and worker)
does `from huggingface_hub import HfFileSystem` at its top, for one `isinstance` in `DataFolder.list_files` (a
listing option for `hf://` folders). That import brings `hf_api`, `hf_file_system` and httpx: 0.2–0.45 CPU s in
every process. While `datatrove.io` is being imported, `huggingface_hub.HfFileSystem` is `HfFileSystemStandIn`,
whose `isinstance` is True exactly for instances of a class with huggingface_hub's real `HfFileSystem` in its
MRO, and which imports the real class only when an object of a huggingface_hub class is checked. Afterwards the
attribute is removed again, so `from huggingface_hub import HfFileSystem` anywhere else gets the real class (its
lazy module `__getattr__`), and `hf://` paths go through fsspec, which imports the real class by name.

Installed by `import datakit` (a meta-path hook on the name `datatrove.io` only); a process that imported
`huggingface_hub.hf_file_system` first gets datatrove's import unchanged.
"""

from __future__ import annotations

import importlib.abc
import sys

MODULE = "datatrove.io"


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
    """What `datatrove.io` binds as `HfFileSystem` (see the module docstring); not instantiable."""

    def __new__(cls, *args, **kwargs):
        return _real_hf_file_system()(*args, **kwargs)


class _Loader(importlib.abc.Loader):
    def __init__(self, loader):
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

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


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != MODULE:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _Loader(spec.loader)
                return spec
        return None


def install() -> None:
    if MODULE not in sys.modules and not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
