"""Writing a rendered set to disk, and telling what changed against what is there."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from callcenter.asterisk.render import SECRET_FILES, RenderError

#: Mode of rendered files that hold passwords (manager.conf, pjsip.conf), and of the others.
SECRET_MODE = 0o640
PUBLIC_MODE = 0o644


def _target(out_dir: Path, name: str) -> Path:
    path = (out_dir / name).resolve()
    if out_dir.resolve() not in path.parents:
        raise RenderError(f"rendered file name {name!r} points outside {out_dir}")
    return path


def changed_files(files: Mapping[str, bytes], out_dir: Path) -> list[str]:
    """Names in ``files`` whose bytes differ from (or are missing in) ``out_dir``, sorted."""
    changed = []
    for name, data in files.items():
        path = _target(out_dir, name)
        try:
            same = path.read_bytes() == data
        except FileNotFoundError:
            same = False
        if not same:
            changed.append(name)
    return sorted(changed)


def write_set(files: Mapping[str, bytes], out_dir: Path, only: list[str] | None = None) -> None:
    """Write ``files`` (all, or the names in ``only``) below ``out_dir``.

    Each file is written to a temporary file in its directory with its final mode, then renamed
    over the old one, so Asterisk never reads half a file and a secret is never readable by
    others, not even for a moment. Files of :data:`SECRET_FILES` get mode 0640, others 0644.
    """
    names = sorted(files) if only is None else sorted(only)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in names:
        path = _target(out_dir, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = SECRET_MODE if Path(name).name in SECRET_FILES else PUBLIC_MODE
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            os.fchmod(fd, mode)
            with os.fdopen(fd, "wb") as fh:
                fh.write(files[name])
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
