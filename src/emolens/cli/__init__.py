"""The `emolens` command: a thin layer over the Python API.

Each module below registers its commands on `emolens.cli.app.app`. Every `EmolensError` is
printed as one line and exits 1; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import importlib
import sys

from emolens.cli.app import app

_COMMAND_MODULES = [
    # one line per command module; each registers its commands on `app`
]

for _mod in _COMMAND_MODULES:
    importlib.import_module(_mod)


def main(argv: list[str] | None = None) -> int:
    from emolens.errors import EmolensError

    try:
        app(args=argv, standalone_mode=False, prog_name="emolens")
    except EmolensError as exc:
        print(f"emolens: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("emolens: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # typer.Exit / click usage errors
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    except Exception as exc:  # click's own usage errors arrive as ClickException
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        if isinstance(exc, click.exceptions.Abort):
            return 1
        raise
    return 0
