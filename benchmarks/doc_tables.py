"""Put tables made from a benchmark's JSON into a docs page, between marker comments.

A page holds ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->`` lines; :func:`replace_block`
rewrites what lies between them and leaves the rest of the page as it is, so the prose around
a table is written by hand and the numbers never are.
"""

from __future__ import annotations

from pathlib import Path


def replace_block(page: Path, name: str, text: str) -> None:
    """Replace the lines between ``<!-- name:begin -->`` and ``<!-- name:end -->`` with ``text``."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    doc = page.read_text()
    if begin not in doc or end not in doc:
        raise SystemExit(f"{page}: no '{begin}' ... '{end}' markers to put the {name} table between")
    head, rest = doc.split(begin, 1)
    _, tail = rest.split(end, 1)
    note = (
        f"<!-- written from the benchmark's JSON by benchmarks/{name.split(':')[0]}.py --doc; do not edit -->"
    )
    page.write_text(f"{head}{begin}\n{note}\n{text.rstrip()}\n{end}{tail}")


def table(header: list[str], rows: list[list[object]]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
