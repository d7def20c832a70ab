"""A small PNG of one image inside a folder of photos, for the Start page's Data panel.

The browser names the folder and a path inside it; the server answers only for a folder it was asked to read
(or one under its uploads folder) and only for an image file whose real path, links followed, lies inside that
folder. A path that leaves it (`..`, an absolute path, a link pointing out) is a UserError (400) before any file
is opened; a path inside that names no image is NotFound (404). The image's header is checked before it is
decoded, against the pixel limit reading a folder has (an image training uses can be drawn; a decompression
bomb cannot), and it is drawn as training sees it."""
from __future__ import annotations

import io
from pathlib import Path, PurePosixPath
from typing import Iterable

from ..data.ingest import IMAGE_SUFFIXES, MAX_PIXELS, to_array
from ..errors import NotFound, UserError

THUMB_SIDE = 96        # pixels: the longer side of a thumbnail (the panel shows them at this size)
MAX_THUMB_SIDE = 256


def inside(root: str | Path, allowed: Iterable[str | Path]) -> Path:
    """`root` resolved, when it is one of the `allowed` folders or lies under one; else a UserError."""
    if not isinstance(root, str) or not root or "\0" in root or not Path(root).is_absolute():
        raise UserError("root: give the absolute path of the folder that was read")
    real = Path(root).resolve()
    if not any(real.is_relative_to(Path(a).resolve()) for a in allowed):  # the folder itself or one inside
        raise UserError(f"root: {root[:200]} is not a folder this server has read; read it on Start first")
    return real


def image_path(root: Path, file: str) -> Path:
    """The image `file` names inside the resolved folder `root`: a relative path whose real location (links
    followed) stays inside root, with an image suffix, that exists."""
    if not isinstance(file, str) or not file or "\0" in file:
        raise UserError("file: give the image's path inside the folder")
    posix = PurePosixPath(file.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts or (len(file) > 1 and file[1] == ":"):
        raise UserError(f"file: {file[:200]!r} leaves the folder; give a path inside it")
    real = (root / posix).resolve()
    if not real.is_relative_to(root):  # a link inside the folder that points out of it
        raise UserError(f"file: {file[:200]!r} leads outside the folder; refused")
    if real.suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(f"file: {file[:200]!r} is not an image ({', '.join(sorted(IMAGE_SUFFIXES))})")
    try:
        found = real.is_file()
    except OSError as exc:  # a name too long for the file system, say
        raise UserError(f"file: {file[:200]!r} cannot be looked up ({exc.strerror})") from None
    if not found:
        raise NotFound(f"file: no image {file[:200]!r} in the folder")
    return real


def thumbnail(root: str, file: str, allowed: Iterable[str | Path], side: int = THUMB_SIDE) -> bytes:
    """A PNG of the image `file` inside `root`, its longer side `side` pixels: larger images shrunk (antialiased),
    smaller ones enlarged by a whole factor without smoothing, so a 28-pixel digit keeps its pixels."""
    from PIL import Image, UnidentifiedImageError
    if not 8 <= side <= MAX_THUMB_SIDE:
        raise UserError(f"side: {side} pixels; give 8 to {MAX_THUMB_SIDE}")
    path = image_path(inside(root, allowed), file)
    try:
        with Image.open(path) as img:  # the header only: the size is checked before decoding
            if img.width * img.height > MAX_PIXELS:
                raise UserError(f"file: {file[:200]!r} is {img.width}x{img.height}, more than {MAX_PIXELS:,} pixels")
            img.draft("RGB", (side, side))  # a JPEG decodes at 1/2-1/8 scale (bench/data_panel.py)
            # as training sees it (cnnlab.data.ingest.to_array): upright, 16 bits scaled, transparency on white
            img = Image.fromarray(to_array(img, grayscale=False).transpose(1, 2, 0))
    except UserError:
        raise
    except Image.DecompressionBombError:  # Pillow's own refusal, at twice its limit, as the file is opened
        raise UserError(f"file: {file[:200]!r} claims more than {MAX_PIXELS:,} pixels; refused") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UserError(f"file: {file[:200]!r} cannot be decoded ({type(exc).__name__})") from None
    longer = max(img.size)
    if longer > side:
        img.thumbnail((side, side), Image.LANCZOS)
    elif longer * 2 <= side:
        factor = side // longer
        img = img.resize((img.width * factor, img.height * factor), Image.NEAREST)
    out = io.BytesIO()
    img.save(out, "PNG")
    return out.getvalue()
