__version__ = "0.1.0"

from datakit import _lazy_imports

_lazy_imports.install()  # datatrove without huggingface_hub until the Hub is used (see there)
