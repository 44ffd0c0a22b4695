"""One temporary folder per run, owned by ecgaudit and removed when the command ends.

torch, torchvision and onnxruntime write into `$TMPDIR` as they are imported (`torchinductor_<user>/`, onnxruntime's
`.ses`), and large splits are held in temporary files there. Pointing `TMPDIR` (and `tempfile`) at a fresh
`ecgaudit-*` folder inside the user's `TMPDIR` before any of them is imported keeps all of that in one place that
the run removes, whatever its exit code: a CI runner's `$TMPDIR` holds nothing new afterwards. Only a SIGKILL
leaves the folder behind (nothing can run then); it is named `ecgaudit-<pid>-*` so such a leftover is recognisable.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator


@contextlib.contextmanager
def owned_tempdir() -> Iterator[str | None]:
    """Make `TMPDIR` a fresh folder for the body, then remove it and restore `TMPDIR`. Yields the folder, or None
    when the user's `TMPDIR` cannot hold one: then nothing is redirected, and the code that needs a temporary
    file reports the unusable `TMPDIR` itself (ecgaudit.data.interface) instead of a silent fallback."""
    asked = os.environ.get("TMPDIR")
    try:
        folder = tempfile.mkdtemp(prefix=f"ecgaudit-{os.getpid()}-", dir=asked or None)
    except OSError:
        yield None
        return
    previous_cache = tempfile.tempdir
    os.environ["TMPDIR"] = folder
    tempfile.tempdir = folder
    try:
        yield folder
    finally:
        if asked is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = asked
        tempfile.tempdir = previous_cache
        shutil.rmtree(folder, ignore_errors=True)
