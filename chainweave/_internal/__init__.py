"""Helpers no user imports: redaction, the sync bridge, SSE decoding, YAML reading."""
