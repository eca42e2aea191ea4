"""Finding frames on disk: recursive listing of image files in natural order."""

from __future__ import annotations

import re
from pathlib import Path

from .io import IMAGE_EXTENSIONS

__all__ = ["natural_key", "list_images"]


def natural_key(path: Path | str) -> tuple:
    """Sort key that orders embedded numbers by value: frame2 < frame10, clip 9/ < clip 10/."""
    parts = re.split(r"(\d+)", str(path))
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p.lower()) for p in parts)


def list_images(root: str | Path) -> list[Path]:
    """Every image file under ``root`` (recursively, hidden files and folders skipped), in natural order
    of their path relative to ``root``."""
    root = Path(root)
    found = [
        p
        for p in root.rglob("*")
        if p.suffix.lower() in IMAGE_EXTENSIONS
        and p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    return sorted(found, key=lambda p: natural_key(p.relative_to(root)))
