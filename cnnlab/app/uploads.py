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
