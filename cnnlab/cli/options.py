"""Arguments that several commands declare alike."""
from __future__ import annotations


def add_data_options(p) -> None:
    """Where a data set is read from, for the commands that read one."""
    p.add_argument("--data-dir", help="folder holding <set>/ sub-folders (else CNNLAB_DATA_DIR, the cache, a download)")
    p.add_argument("--root", help="imagefolder: ROOT/<class>/*.png")
