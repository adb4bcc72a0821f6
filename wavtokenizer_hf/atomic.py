"""Write files and directories under a temporary name, then rename, so no partial output looks complete."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import WavTokenizerError


def check_can_write(path: Path, overwrite: bool) -> None:
    """Refuse to replace an existing output unless asked to."""
    if path.exists() and not overwrite:
        raise WavTokenizerError(f"{path} already exists; pass --overwrite (overwrite=True) to replace it")


# `.NAME.RANDOM.tmp` or `.NAME.RANDOM.tmp.SUFFIX`: what `atomic_path` writes before the rename
_TEMPORARY = re.compile(r"^\..+\.[^.]+\.tmp(\.[^.]+)?$")


def is_temporary(path: str | os.PathLike) -> bool:
    """Whether `path` is a temporary file of `atomic_path` (left behind by a killed run): never an input."""
    return bool(_TEMPORARY.match(Path(path).name))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, overwrite: bool = False, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling of `path`; on success it is renamed to `path`, on error it is removed."""
    path = Path(path)
    check_can_write(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + "".join(path.suffixes[-1:]), dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    tmp.chmod((0o777 if is_dir else 0o666) & ~_umask())  # mkstemp/mkdtemp make private ones; outputs are ordinary
    try:
        yield tmp
        if path.exists():
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise
