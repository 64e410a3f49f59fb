"""Synthetic reasoning and agent data (stage `synth.ingest`): read, normalise to `schemas/chat.schema.json`,
validate, and write `synthetic` chat Samples. Up-sampling happens in the tokens stage's mixture."""
