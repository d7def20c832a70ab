"""The input limits every front end enforces, defined once in the schema (cnnlab/schema/limits.py)."""
from ..schema.limits import *  # noqa: F401,F403 — the one definition, re-exported for the adapters
from ..schema.limits import MAX_BODY_BYTES, MAX_JSON_DEPTH, MAX_UPLOAD_BYTES, json_depth  # noqa: F401
