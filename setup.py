"""Only the optional C kernels (the decontam stage's scan, the tokens stage's UTF-8 check); everything else is in
pyproject.toml. `optional=True`: where one cannot be compiled the install still succeeds and the stage uses its
Python path (decontam logs so)."""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("datakit.decontam._scan", ["datakit/decontam/_scan.c"], optional=True, extra_compile_args=["-O3"]),
    Extension("datakit.tokens._utf8", ["datakit/tokens/_utf8.c"], optional=True, extra_compile_args=["-O3"]),
])
