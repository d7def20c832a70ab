"""An image a page uploads (a data: URL), read within the limits of the one schema: over MAX_UPLOAD_BYTES is
TooLarge; more than MAX_PIXELS is refused from the header, before decoding (a decompression bomb stops
there); what does not decode is a UserError naming the field. PIL's globals are left alone."""
from __future__ import annotations

import base64
import binascii
import io

from ..errors import TooLarge, UserError
from ..schema.limits import MAX_PIXELS, MAX_UPLOAD_BYTES


def open_upload(data_url: str, what: str = "image", mode: str = "RGB", background=(255, 255, 255, 255)):
    """The upload as a decoded PIL image in `mode` (L or RGB), transparency laid on `background`."""
    from PIL import Image, UnidentifiedImageError
    if not isinstance(data_url, str):
        raise UserError(f"{what}: send a data: URL (PNG or JPEG)")
    payload = data_url.split(",", 1)[1] if data_url.startswith("data:") else data_url
    if len(payload) > MAX_UPLOAD_BYTES * 4 // 3 + 4:
        raise TooLarge(f"{what}: over the upload limit of {MAX_UPLOAD_BYTES / 2 ** 20:.0f} MB")
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise UserError(f"{what}: not base64 data") from None
    if len(raw) > MAX_UPLOAD_BYTES:
        raise TooLarge(f"{what}: {len(raw) / 2 ** 20:.1f} MB; the upload limit is {MAX_UPLOAD_BYTES / 2 ** 20:.0f} MB")
    try:
        with Image.open(io.BytesIO(raw)) as img:  # the header only: the size is checked before decoding
            if img.width * img.height > MAX_PIXELS:
                raise UserError(f"{what}: {img.width}x{img.height} is more than {MAX_PIXELS:,} pixels")
            img = img.convert("RGBA")
            return Image.alpha_composite(Image.new("RGBA", img.size, background), img).convert(mode)
    except UserError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning, OSError,
            SyntaxError, ValueError) as exc:
        raise UserError(f"{what}: cannot decode it ({type(exc).__name__}); send a PNG or JPEG") from None


def extract_zip(archive, dest, max_bytes: int | None = None, max_files: int | None = None,
                max_expanded: int | None = None, max_ratio: float | None = None,
                max_member_ratio: float | None = None) -> dict:
    """A zip of photos (a path or a binary file) unpacked into the new folder `dest`, refused whole before a
    byte is written when it passes a limit (cnnlab/schema/limits.py: its size, its file count, what it expands
    to, its expansion ratio) or names a path outside `dest` (`..`, an absolute path, a drive, a link). The
    sizes are counted again while writing (a zip's directory can lie); a refusal leaves no `dest` behind.
    Returns {"files", "bytes", "root"}: root is the folder the images are in (a zip of one folder: that one)."""
    import shutil
    import stat
    import zipfile
    from pathlib import Path, PurePosixPath
    from ..schema import limits
    max_bytes = max_bytes or limits.MAX_ZIP_BYTES
    max_files = max_files or limits.MAX_ZIP_FILES
    max_expanded = max_expanded or limits.MAX_ZIP_EXPANDED
    max_ratio = max_ratio or limits.MAX_ZIP_RATIO
    max_member_ratio = max_member_ratio or limits.MAX_ZIP_MEMBER_RATIO
    dest = Path(dest)
    size = Path(archive).stat().st_size if isinstance(archive, (str, Path)) else archive.seek(0, 2)
    if not isinstance(archive, (str, Path)):
        archive.seek(0)
    if size > max_bytes:
        raise TooLarge(f"the zip is {size / 2 ** 20:.0f} MB; the limit is {max_bytes / 2 ** 20:.0f} MB "
                       "(give a larger folder by its path instead)")
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"not a zip file ({exc})") from None
    with zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > max_files:
            raise TooLarge(f"the zip holds {len(members):,} files; the limit is {max_files:,}")
        for m in zf.infolist():
            name = m.filename.replace("\\", "/")
            parts = PurePosixPath(name).parts
            if name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in parts:
                raise UserError(f"the zip names a path outside its folder: {m.filename!r}; refused")
            if stat.S_ISLNK(m.external_attr >> 16):
                raise UserError(f"the zip holds a link: {m.filename!r}; refused")
            if m.compress_size and m.file_size / m.compress_size > max_member_ratio and m.file_size > 2 ** 20:
                raise TooLarge(f"{m.filename}: expands {m.file_size / m.compress_size:.0f}x "
                               f"(limit {max_member_ratio}x): a zip bomb, refused")
        expanded = sum(m.file_size for m in members)
        if expanded > max_expanded:
            raise TooLarge(f"the zip expands to {expanded / 2 ** 30:.1f} GB; the limit is "
                           f"{max_expanded / 2 ** 30:.0f} GB")
        if size and expanded / size > max_ratio and expanded > 2 ** 20:
            raise TooLarge(f"the zip expands {expanded / size:.0f}x (limit {max_ratio}x): a zip bomb, refused")
        if dest.exists():
            raise UserError(f"{dest}: already exists")
        written = 0
        try:
            for m in members:
                target = dest / PurePosixPath(m.filename.replace("\\", "/"))
                target.parent.mkdir(parents=True, exist_ok=True)
                count = 0
                with zf.open(m) as src, open(target, "wb") as out:
                    while chunk := src.read(1 << 20):
                        count += len(chunk)
                        written += len(chunk)
                        if count > m.file_size or written > max_expanded:
                            raise TooLarge(f"{m.filename}: holds more than its directory says; refused")
                        out.write(chunk)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
    root = dest
    inside = [p for p in dest.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(inside) == 1 and inside[0].is_dir():  # a zip of one folder: the folder itself
        root = inside[0]
    return {"files": len(members), "bytes": written, "root": str(root)}
