"""The pieces of a notebook's rich display: the `_repr_html_` of a run, a model summary, the doctor's verdict, a
comparison and a look inside a network are built from these, and every text passes through `html.escape`
here (a run, layer or class name is the user's, never markup)."""
from __future__ import annotations

import base64
import html

# Jupyter's own table style is kept (no CSS of ours): the tables read the same in the light and dark themes.
BOX = "margin:0.3em 0"


def esc(value) -> str:
    return html.escape(str(value))


def table(headers: list[str], rows: list[list], right: tuple[int, ...] = (), foot: list[list] = ()) -> str:
    """A <table> of text cells, escaped; the columns in `right` (numbers) align right; `foot` rows (totals)
    follow the body."""
    def line(cells, tag="td"):
        return "<tr>" + "".join(f'<{tag} style="text-align:{"right" if i in right else "left"}">{esc(c)}</{tag}>'
                                for i, c in enumerate(cells)) + "</tr>"
    head = line(headers, "th")
    body = "".join(line(r) for r in rows)
    tail = f"<tfoot>{''.join(line(r) for r in foot)}</tfoot>" if foot else ""
    return f"<table><thead>{head}</thead><tbody>{body}</tbody>{tail}</table>"


def png(data: bytes, alt: str, width: int | None = None) -> str:
    """An <img> holding the PNG itself (base64): the saved notebook shows it without the file beside it."""
    return image(f"data:image/png;base64,{base64.b64encode(data).decode()}", alt, width)


def image(url: str, alt: str, width: int | None = None, title: str | None = None, pixelated: bool = False,
          height: int | None = None) -> str:
    """An <img> of a data: URL; `pixelated` keeps a small map's pixels sharp when it is drawn larger."""
    size = (f' width="{width}"' if width else "") + (f' height="{height}"' if height else "")
    hover = f' title="{esc(title)}"' if title else ""
    sharp = ' style="image-rendering:pixelated"' if pixelated else ""
    return f'<img src="{esc(url)}" alt="{esc(alt)}"{size}{hover}{sharp}>'


def block(*parts: str) -> str:
    return f'<div style="{BOX}">{"".join(parts)}</div>'
