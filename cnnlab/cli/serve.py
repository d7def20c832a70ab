"""`cnnlab serve`: the web app on this machine."""
from __future__ import annotations

import secrets
import sys

from ..errors import UserError
from ..serve.guard import LOOPBACK


def register(sub) -> None:
    p = sub.add_parser("serve", help="the web app: build a model, train it live, compare runs, see what it sees")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--allow-remote", action="store_true", help="needed with a --host other than loopback")
    p.add_argument("--runs", default="runs", help="runs directory (its cnnlab.db is the store)")
    p.add_argument("--data-dir", help="folder holding the data sets (else CNNLAB_DATA_DIR, the cache)")
    p.add_argument("--threads", type=int, help="torch threads for the training worker")
    p.add_argument("--open", action="store_true", help="open the page in the default browser")
    p.set_defaults(func=cmd_serve)


def cmd_serve(args) -> int:
    from ..serve.app import create_app, serve
    token = None
    if args.host not in LOOPBACK:
        if not args.allow_remote:
            raise UserError(f"--host {args.host} lets other machines reach this one; add --allow-remote to mean it "
                            "(every request then needs the token printed at start)")
        token = secrets.token_urlsafe(24)
        print(f"warning: serving on {args.host}: anyone who can reach port {args.port} and has the token can train "
              "and read runs here", file=sys.stderr)
    app = create_app(args.runs, args.data_dir, token, args.threads)
    url = f"http://{'127.0.0.1' if args.host in LOOPBACK else args.host}:{args.port}/" + \
        (f"?token={token}" if token else "")
    print(f"cnnlab serve: open {url}  (runs in {args.runs}; Ctrl-C stops)", flush=True)
    if args.open:
        import webbrowser
        webbrowser.open(url)
    serve(app, args.host, args.port)
    return 0
