"""Arguments that several commands declare alike."""
from __future__ import annotations


def add_data_options(p) -> None:
    """Where a data set is read from, for the commands that read one."""
    p.add_argument("--data-dir", help="folder holding <set>/ sub-folders (else CNNLAB_DATA_DIR, the cache, a download)")
    p.add_argument("--root", help="imagefolder: ROOT/<class>/*.png")


def add_folder_options(p) -> None:
    """How an image folder's problems are met: skipped and reported (the default), or refused."""
    p.add_argument("--strict", action="store_true",
                   help="image folder: fail on any broken file, listing them all (default: skip and report them)")
    p.add_argument("--skip-empty", action="store_true",
                   help="image folder: leave out an empty class folder (default: an error naming it)")
