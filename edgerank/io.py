"""Atomic writes: a crash or a bad input never leaves a half-written artifact where a good one was.

``atomic_dir`` builds a folder under a temporary sibling name and swaps it in with two renames:
``target`` -> ``.NAME.old-PID-X``, then ``.NAME.tmp-PID-X`` -> ``target``. A process killed between
them leaves no ``target`` at all, so the names carry the writer's process id: the next
``atomic_dir`` on the same target (and ``load_artifact``) sees that the writer is dead and finishes
the swap (the temporary folder is complete by then: the first rename happens only after the body
succeeded). Temporary folders of dead writers are removed the same way. Process ids are only
meaningful on one host: writers on other hosts sharing the folder are not told apart.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: temporary folders this process is filling now (by name): its own pid alone does not tell them
#: from those of an earlier, dead process that had the same pid
_ACTIVE: set[str] = set()


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling folder; on success it replaces ``target`` by rename, on any error it
    is removed and ``target`` (if it existed) is untouched. What killed writers left behind for the
    same target is repaired or removed first."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; the folder should read like any other
    _ACTIVE.add(tmp.name)
    try:
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        _swap(tmp, target)
    finally:
        _ACTIVE.discard(tmp.name)


def _swap(tmp: Path, target: Path) -> None:
    """Flush ``tmp`` to disk, then rename it over ``target`` (kept aside as ``.NAME.old-PID-X`` meanwhile)."""
    _fsync_tree(tmp)
    old = None
    if target.exists() or target.is_symlink():
        old = target.with_name(f".{target.name}.old-{os.getpid()}-{tmp.name.rsplit('-', 1)[1]}")
        os.replace(target, old)
    os.replace(tmp, target)
    _fsync_dir(target.parent)
    if old is not None:
        _remove(old)


def recover(target: str | os.PathLike, *, clean: bool = True) -> None:
    """Repair what writers killed inside ``atomic_dir`` left next to ``target``.

    A missing ``target`` with a dead writer's ``.old`` folder beside it is a swap cut between its
    renames: it is finished with the writer's temporary folder, or undone when that is gone. A dead
    writer's ``.old`` folder next to a present ``target`` is removed, and with ``clean`` so are its
    temporary folders. Best effort: a folder that cannot be changed is left as it is.
    """
    target = Path(target)
    olds, tmps = _leftovers(target)
    for (pid, suffix), old in olds.items():
        with contextlib.suppress(OSError):
            if not (target.exists() or target.is_symlink()):
                partner = tmps.pop((pid, suffix), None) if suffix else _only(tmps, pid)
                os.replace(partner if partner is not None else old, target)
                if partner is None:
                    continue
            _remove(old)
    if clean:
        for tmp in tmps.values():
            shutil.rmtree(tmp, ignore_errors=True)


def _leftovers(target: Path) -> tuple[dict[tuple[int, str], Path], dict[tuple[int, str], Path]]:
    """Dead writers' ``.old`` and ``.tmp`` siblings of ``target``, keyed by (pid, suffix)."""
    found: dict[str, dict[tuple[int, str], Path]] = {"old": {}, "tmp": {}}
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return {}, {}
    for entry in entries:
        for kind in found:
            prefix = f".{target.name}.{kind}-"
            if entry.name.startswith(prefix):
                pid, _, suffix = entry.name[len(prefix) :].partition("-")
                if not pid.isdigit() or (kind == "tmp" and not suffix):  # not made by atomic_dir
                    continue
                if not _alive(int(pid), f".{target.name}.tmp-{pid}-{suffix}"):
                    found[kind][(int(pid), suffix)] = Path(entry.path)
    return found["old"], found["tmp"]


def _only(tmps: dict[tuple[int, str], Path], pid: int) -> Path | None:
    """The one temporary folder of ``pid`` (an ``.old`` name without suffix pairs with it), if exactly one."""
    keys = [k for k in tmps if k[0] == pid]
    return tmps.pop(keys[0]) if len(keys) == 1 else None


def _alive(pid: int, tmp_name: str) -> bool:
    """Whether process ``pid``, writing into ``tmp_name``, may still be running (when unsure: yes)."""
    if pid == os.getpid():
        return tmp_name in _ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: a live process of another user
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _fsync_tree(folder: Path) -> None:
    """Every file's data on disk before the rename publishes it: after a power cut the new folder is
    whole or absent, never a set of empty files under the final name."""
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            if os.path.isfile(path) and not os.path.islink(path):
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        _fsync_dir(Path(root))


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems cannot fsync a directory
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=target.parent)
    os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; a result file should read like any other file
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _finite(obj: Any) -> Any:
    """NaN/inf become null: bare NaN is not JSON and breaks other languages' readers."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(target: str | os.PathLike, obj: Any) -> None:
    text = json.dumps(_finite(obj), indent=2, sort_keys=False, default=str, allow_nan=False)
    atomic_write_bytes(target, (text + "\n").encode())
