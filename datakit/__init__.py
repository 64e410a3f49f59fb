__version__ = "0.1.0"

from datakit import _hub_deferral

_hub_deferral.install()  # datatrove.io without huggingface_hub's file system until hf:// is used (see there)
