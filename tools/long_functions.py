"""List the functions longer than N lines (default 80): `python tools/long_functions.py [N] [ROOT ...]`.

The developers' guide asks for no function over about 80 lines in src/; this prints the ones
that are, longest first, as `LINES  PATH:LINE  NAME`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path


def long_functions(roots: list[str], limit: int) -> list[tuple[int, str, str]]:
    found = []
    for root in roots:
        for path in sorted(Path(root).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    n = node.end_lineno - node.lineno + 1  # type: ignore[operator]
                    if n > limit:
                        found.append((n, f"{path}:{node.lineno}", node.name))
    return sorted(found, reverse=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    limit = int(args.pop(0)) if args and args[0].isdigit() else 80
    for n, where, name in long_functions(args or ["src"], limit):
        print(f"{n:4d}  {where}  {name}")
