"""One live writer per output folder: an exclusive `flock` on `<folder>/.lock`, which the kernel releases when the
process ends (a killed run leaves no stuck lock, only the empty file)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .errors import WavTokenizerError

LOCK_NAME = ".lock"


class OutputLock:
    """Held while a run writes to `directory`; a second run on the same folder gets a clear error at once."""

    def __init__(self, directory: str | os.PathLike, what: str = "run"):
        self.directory, self.what = Path(directory), what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "OutputLock":
        if self._fd is not None:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise WavTokenizerError(f"{self.directory} is in use by another {self.what} (pid {holder}); wait for it "
                                    "to finish or choose another output folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "OutputLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:
        self.release()
