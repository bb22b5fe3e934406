"""Where tvcore's files go, and how they get there.

Every file tvcore writes (vectors, weights, merges, records, baselines, plots,
caches) is checked before the work that produces it starts (:func:`check_output`,
:func:`check_output_dir`) and then written through :func:`atomic_write`: into a
temporary file beside the target, renamed over it only once complete, and
removed on any failure. So a run either leaves the old file or the whole new one,
never half of one, and never a stray temporary; and an output that is one of the
command's own inputs is refused before a byte is read.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from .errors import OutputError


def _existing_ancestor(path: Path) -> Path:
    """The nearest ancestor of ``path`` that exists (``path`` itself excluded)."""
    parent = path.parent
    while not os.path.lexists(parent) and parent != parent.parent:
        parent = parent.parent
    return parent


def _check_folder(folder: Path, target: Path, what: str) -> None:
    """``folder`` is where ``target`` would be created (it, or its nearest
    existing ancestor): it must be a writable directory."""
    anchor = folder if os.path.lexists(folder) else _existing_ancestor(folder)
    if not anchor.is_dir():
        raise OutputError(f"{what} {target}: {anchor} is a file, not a folder; choose a path under a folder")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {target}: folder {anchor} is not writable; choose a writable folder")


def _same_file(a: Path, b: Path) -> bool:
    if os.path.abspath(a) == os.path.abspath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def check_output(path: str | os.PathLike, inputs: Iterable[str | os.PathLike | None] = (),
                 what: str = "output") -> Path:
    """Check, before any work, that ``path`` can be written as a file.

    Refused with :class:`OutputError`: a path that is a directory; a path that is
    one of ``inputs`` (the same name, or the same file by inode: a hard or symbolic
    link); a path whose folder is a file or is not writable. A folder that does not
    exist yet is fine when it can be created.
    """
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path} is a directory; give a file path such as {path / 'out'}")
    for source in inputs:
        if source is not None and _same_file(path, Path(source)):
            raise OutputError(f"{what} {path} is also an input ({source}); writing it would destroy that "
                              "input: choose another output path")
    _check_folder(path.parent, path, what)
    return path


def check_output_dir(path: str | os.PathLike, what: str = "output folder") -> Path:
    """Check, before any work, that ``path`` is (or can be created as) a writable folder."""
    path = Path(path)
    if os.path.lexists(path) and not path.is_dir():
        raise OutputError(f"{what} {path} is a file, not a folder; give a folder (it is created if missing)")
    _check_folder(path, path, what)
    return path


def file_mode() -> int:
    """The mode of every file tvcore writes: 0666 less the umask, as for any file a
    program creates (0644 under the usual umask 022). Writers that make their
    temporary file private (safetensors' ``save_file``: 0600) are brought to it."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def temp_path(path: Path) -> Path:
    """The temporary file beside ``path`` that is renamed onto it when complete."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def _make_parents(path: Path) -> list[Path]:
    """Create the missing folders above ``path``; return them, deepest first."""
    created = []
    folder = path.parent
    while not os.path.lexists(folder):
        created.append(folder)
        folder = folder.parent
    for folder in reversed(created):
        try:
            folder.mkdir()
        except FileExistsError:
            pass
    return created


def _remove(tmp: Path, created: list[Path]) -> None:
    tmp.unlink(missing_ok=True)
    for folder in created:  # deepest first; only the ones this write created
        try:
            folder.rmdir()
        except OSError:
            break


@contextmanager
def atomic_write(path: str | os.PathLike, what: str = "output") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds, rename it
    onto ``path``. On any failure the temporary file (and any folder created for
    it) is removed and ``path`` is left as it was. An ``OSError`` while writing
    (a full disk, a permission) becomes an :class:`OutputError` naming ``path``.

        with atomic_write(target) as tmp:
            tmp.write_text(text)
    """
    path = check_output(path, what=what)
    tmp = temp_path(path)
    created: list[Path] = []
    try:
        created = _make_parents(path)
        yield tmp
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp, created)
        raise OutputError(f"cannot write {what} {path}: {exc.strerror or exc}") from exc
    except BaseException:
        _remove(tmp, created)
        raise
