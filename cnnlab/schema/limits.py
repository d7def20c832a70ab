"""How much input cnnlab reads: the limits every front-end shares (YAML files, the Python API, the web server).

Each limit is well above what real models and configs need and far below what would take the process
minutes or gigabytes, so a mistake or a hostile request fails in milliseconds with one line saying which
limit it passed. The checks here are small, pure and iterative: what they guard against (a 300,000-layer
list, blocks nested thousands deep) is exactly what would overflow a recursive walk.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Callable

from ..errors import UserError
from .layers import ALIASES, BLOCK_FIELDS, LAYERS

# Layers in a model, top-level and inside blocks together. The largest shipped model, resnet18, has 53
# (ResNet-110 written in the layer language has about 330, ResNet-164 about 500); shape-checking 1,000 layers
# takes about half a second, and the limit caps what one web request can make the server build. The
# thousand-layer CIFAR ResNets of the papers (ResNet-1001/1202, 3,000 to 3,600 entries here) were experiments
# on depth itself and do not fit: raise this if that is what you mean to train.
MAX_LAYERS = 1000

# Blocks (residual, concat) nested inside blocks. Real networks nest one level (a ResNet block), two with stages
# written as blocks; each level costs the builder a few Python frames, so 16 is far from the recursion limit.
MAX_DEPTH = 16

# Values in one YAML document, counted with every alias written out (a mapping's keys count too). A
# 1,000-layer model with every argument spelled out is about 25,000; an "alias bomb" (nine aliases of nine
# aliases of ...) reaches 10^9 from a few hundred bytes and is refused as soon as it passes this.
MAX_YAML_NODES = 100_000

# Nesting of JSON (a web request body) and YAML. A model nested MAX_DEPTH blocks deep takes 3 levels a block
# (list, layer, arguments) and about 10 around it in a request or a config: ~60. Python's json, the YAML
# composer and the walks after them (pydantic, copy.deepcopy, line tables) recurse once or a few times a
# level and fail near 1,000 frames, so 100 leaves room both ways.
MAX_JSON_DEPTH = 100
MAX_YAML_DEPTH = MAX_JSON_DEPTH  # the same data, written the other way

# An uploaded image (the web page's "see what it sees"), in bytes before base64. A 4 MiB PNG is already a
# large photo; decoding is bounded separately (MAX_PIXELS).
MAX_UPLOAD_BYTES = 4 * 2 ** 20
MAX_PIXELS = 4096 * 4096  # an upload's decoded pixels: a decompression bomb is refused at its header

# A zip of the user's own photos (the Start page's "your own photos"). 512 MiB holds ~100,000 small JPEGs; a
# folder larger than that is better given by its path on the server's machine. Photos hardly compress (JPEG,
# PNG): an archive expanding more than 20x in all, or one member more than 200x, is a zip bomb, refused from
# its directory before a byte is written; the sizes are checked again while writing, since a directory can lie.
MAX_ZIP_BYTES = 512 * 2 ** 20
MAX_ZIP_FILES = 200_000
MAX_ZIP_EXPANDED = 4 * 2 ** 30
MAX_ZIP_RATIO = 20
MAX_ZIP_MEMBER_RATIO = 200

# A web request body. An upload at MAX_UPLOAD_BYTES arrives as a base64 data: URL inside JSON: 4/3 of it,
# 5,592,408 bytes, plus ~100 of prefix and JSON around it; 6 MiB holds that with 0.66 MiB to spare. Every
# other request (a 1,000-layer model is ~100 KB of JSON) is far smaller.
MAX_BODY_BYTES = 6 * 2 ** 20


def _blocks(entry) -> list[tuple[tuple, list]] | None:
    """[(path inside the entry, a nested layer list), ...] for a block (`residual`: its layers and shortcut;
    `concat`: each branch), else None. Reads the three spellings normalise_entry accepts:
    {residual: {layers: [...]}}, {residual: [...]} (the shorthand sets the main argument),
    {type: residual, layers: [...]}."""
    if not isinstance(entry, dict):
        return None
    if len(entry) == 1:
        (name, value), = entry.items()
        inner: tuple = (name,)
    elif "type" in entry:
        name, value, inner = entry["type"], entry, ()
    else:
        return None
    if not isinstance(name, str):
        return None
    schema = LAYERS.get(ALIASES.get(name.lower(), name.lower()))
    if schema is None or not set(BLOCK_FIELDS) & set(schema.model_fields):
        return None
    if isinstance(value, dict):
        fields = [(inner + (key,), key, value.get(key)) for key in BLOCK_FIELDS if key in schema.model_fields]
    elif schema.main in BLOCK_FIELDS:  # the shorthand {residual: [...]}: the list sits where the argument would
        fields = [(inner, schema.main, value)]
    else:
        return None
    found = []
    for at, key, nested in fields:
        if not isinstance(nested, list):
            continue
        if BLOCK_FIELDS[key] == 1:
            found.append((at, nested))
        else:  # a list of branches, each a layer list
            found += [(at + (i,), branch) for i, branch in enumerate(nested) if isinstance(branch, list)]
    return found


def check_model_size(layers: list, where: str | Callable[[tuple], str] = "model", path: tuple = ("layers",)) -> None:
    """Refuse a layer list with more than MAX_LAYERS layers (blocks' layers included) or blocks nested more
    than MAX_DEPTH deep, before anything is built. `where` is a name, or a function from a path (('layers',
    3, 'residual', 'layers')) to 'file.yaml line 7' (Located.where) so the message points at the line.

    Iterative, and it stops as soon as a limit is passed: a 300,000-layer list is refused after one len().
    A list that contains itself (possible from Python) ends too: each pass adds layers and depth."""
    name = where if callable(where) else (lambda _: where)
    count, stack = 0, [(layers, path, 0, "")]
    while stack:
        entries, at, depth, prefix = stack.pop()
        count += len(entries)
        if count > MAX_LAYERS:
            more = "" if count == len(layers) else "at least "  # counting stopped early: say so
            raise UserError(f"{name(path)}: the model has {more}{count:,} layers (counting those inside blocks); "
                            f"cnnlab builds at most {MAX_LAYERS:,}")
        for index, entry in enumerate(entries):
            blocks = _blocks(entry)
            if not blocks:
                continue
            if depth + 1 > MAX_DEPTH:
                raise UserError(f"{name(at + (index,))}: layer {prefix}{index + 1}: blocks nested more than "
                                f"{MAX_DEPTH} deep; cnnlab builds at most {MAX_DEPTH} levels of blocks inside blocks")
            for inner, nested in blocks:
                stack.append((nested, at + (index,) + inner, depth + 1, f"{prefix}{index + 1}."))


_NOT_MARK = bytes(b for b in range(256) if b not in b'[]{}"')  # what json_depth drops before counting


@lru_cache(maxsize=1)
def _steps():
    """Per byte value, its step in depth: +1 an opener, -1 a closer, else 0."""
    import numpy as np
    table = np.zeros(256, np.int8)
    table[list(b"[{")], table[list(b"]}")] = 1, -1
    return table


def json_depth(raw: bytes | str, limit: int = MAX_JSON_DEPTH) -> int:
    """How deep a JSON text's brackets nest ('[[1]]' is 2; brackets inside strings do not count), read
    without parsing it, so a server can refuse `[[[[...]]]]` before json.loads recurses into it. A text
    deeper than `limit` gives limit + 1. Malformed JSON gets a number too; json.loads rejects it afterwards.
    Every step runs in C (bytes methods, numpy): a 6 MiB body takes about 0.1 s at most, whatever it holds."""
    import numpy as np  # here, not at the top: the YAML loader imports this module and needs no numpy
    if isinstance(raw, str):
        raw = raw.encode()
    # Escapes first (an escaped backslash, then an escaped quote), so every quote left opens or closes a
    # string. Outside strings a backslash is not JSON at all. Then only brackets and quotes matter.
    marks = raw.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_MARK)
    if not marks:
        return 0
    codes = np.frombuffer(marks, np.uint8)
    outside = np.cumsum(codes == ord('"'), dtype=np.int32) % 2 == 0  # an even number of quotes before it
    step = _steps()[codes] * outside  # +1 an opener, -1 a closer, 0 a quote or a bracket inside a string
    depth = int(np.cumsum(step, dtype=np.int32).max())
    return limit + 1 if depth > limit else max(depth, 0)


def check_json_depth(raw: bytes | str, where: str = "request body", limit: int = MAX_JSON_DEPTH) -> None:
    """Raise UserError when a JSON text nests deeper than `limit`."""
    if json_depth(raw, limit) > limit:
        raise UserError(f"{where}: JSON nested more than {limit} levels deep; cnnlab reads at most {limit}")
