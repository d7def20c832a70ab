"""The input limits every front end enforces, defined once in the schema (cnnlab/schema/limits.py)."""
from ..schema.limits import (MAX_BODY_BYTES, MAX_DEPTH, MAX_JSON_DEPTH, MAX_LAYERS, MAX_PIXELS,  # noqa: F401
                             MAX_UPLOAD_BYTES, MAX_ZIP_BYTES, MAX_ZIP_EXPANDED, MAX_ZIP_FILES, MAX_ZIP_MEMBER_RATIO,
                             MAX_ZIP_RATIO, check_json_depth, json_depth)
