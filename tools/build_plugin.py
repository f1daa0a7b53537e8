#!/usr/bin/env python3
"""Build the WordPress companion plugin into an installable zip: `make plugin` (or `python tools/build_plugin.py`).

The zip holds the folder `encore/` (WordPress installs a plugin zip by its top folder). Entries are sorted and
carry a fixed date, not the clock's, so the same source always gives the same bytes.
"""

from __future__ import annotations

import argparse
import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "connectors" / "woocommerce" / "wordpress" / "encore"
OUTPUT = ROOT / "dist" / "encore-for-woocommerce.zip"
SKIP = {".DS_Store", "Thumbs.db", "__pycache__"}
EPOCH = (2024, 1, 1, 0, 0, 0)


def plugin_header(php: str) -> dict[str, str]:
    """The "Name: value" lines of the plugin's header comment, as WordPress's get_plugin_data reads them."""
    comment = re.search(r"/\*\*(.*?)\*/", php, re.S)
    fields: dict[str, str] = {}
    for line in (comment.group(1) if comment else "").splitlines():
        match = re.match(r"\s*\*?\s*([A-Z][A-Za-z ]+):\s*(.+?)\s*$", line)
        if match:
            fields[match.group(1)] = match.group(2)
    return fields


def build(source: Path = SOURCE, output: Path = OUTPUT) -> Path:
    header = plugin_header((source / "encore.php").read_text(encoding="utf-8"))
    missing = {"Plugin Name", "Version", "Requires PHP", "License", "Text Domain"} - header.keys()
    if missing:
        raise SystemExit(f"encore.php's plugin header lacks {', '.join(sorted(missing))}")
    files = sorted(p for p in source.rglob("*") if p.is_file() and not SKIP & set(p.relative_to(source).parts))
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_suffix(".zip.part")
    with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for directory in sorted({p.parent for p in files} | {source}):
            info = zipfile.ZipInfo(f"encore/{directory.relative_to(source).as_posix()}/".replace("/./", "/"), EPOCH)
            info.external_attr = (0o40755 << 16) | 0x10
            archive.writestr(info, b"")
        for path in files:
            info = zipfile.ZipInfo(f"encore/{path.relative_to(source).as_posix()}", EPOCH)
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, path.read_bytes())
    partial.replace(output)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"where to write the zip (default {OUTPUT})")
    args = parser.parse_args(argv)
    path = build(output=args.output)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
