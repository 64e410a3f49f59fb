"""Only the optional C scan kernel of the decontam stage; everything else is in pyproject.toml. `optional=True`:
where it cannot be compiled the install still succeeds and decontam uses its numpy path (and logs so)."""

from setuptools import Extension, setup

setup(ext_modules=[Extension("datakit.decontam._scan", ["datakit/decontam/_scan.c"], optional=True,
                             extra_compile_args=["-O3"])])
