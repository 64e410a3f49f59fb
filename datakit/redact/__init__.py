"""Secrets and personal data: detection (`detect`), typed placeholders (`replace`), per-sample redaction with
its consistency checks (`samples`), the pipeline step (`steps`) and the `redact` stage type (`stages`)."""
