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
    "emolens.cli.evaluate",
    "emolens.cli.data",
    "emolens.cli.serve",
    "emolens.cli.train",
    "emolens.cli.faces",
    "emolens.cli.export",
    "emolens.cli.compare",
]

for _mod in _COMMAND_MODULES:
    importlib.import_module(_mod)


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line each ("emolens: warning: ..."), not Python's file, line and source."""
    print(f"emolens: warning: {message}", file=file or sys.stderr)


def main(argv: list[str] | None = None) -> int:
    import warnings

    shown_before = warnings.showwarning
    warnings.showwarning = _warning_line
    try:
        return _run(argv)
    finally:
        warnings.showwarning = shown_before  # a caller's (a test's, a notebook's) own again


def _run(argv: list[str] | None) -> int:
    from emolens.errors import EmolensError

    try:
        # Without standalone mode, Typer catches Ctrl-C itself and returns 130; an Exit's code comes back too.
        code = app(args=argv, standalone_mode=False, prog_name="emolens")
        if code == 130:
            print("emolens: interrupted", file=sys.stderr)
        return code if isinstance(code, int) else 0
    except EmolensError as exc:
        print(f"emolens: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("emolens: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:  # typer.Exit / click usage errors
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    except Exception as exc:
        # Usage errors come from the click that typer bundles, not necessarily the installed
        # one, so recognise them by shape rather than by class.
        show, code = getattr(exc, "show", None), getattr(exc, "exit_code", None)
        if callable(show) and isinstance(code, int):
            show()
            return code
        if type(exc).__name__ == "Abort":
            return 1
        raise
    return 0
