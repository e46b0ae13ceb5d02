"""The private on-disk cache of generated kernel sources, and importing a source from it safely.

Triton's ``@triton.jit`` reads a kernel's source with ``inspect``, so a generated kernel must live in a real
file. The files live in one private directory: ``$TPJAX_TRITON_GEN_DIR`` if set, else
``$XDG_CACHE_HOME/tpjax/triton`` (``~/.cache/tpjax/triton`` when ``XDG_CACHE_HOME`` is unset or relative).
It is created with mode 0o700, and before every use it must be a real directory (not a symlink), owned by
the current user and not writable by group or others; anything else raises :class:`UnsafeCacheDirError`.

A source is stored as ``<sha256 of its text>.py``: written to a temporary file created exclusively in the
checked directory (``O_CREAT | O_EXCL | O_NOFOLLOW``, random name), fsynced, then renamed over the final name
(``os.replace``, atomic). All file operations go through a descriptor of the checked directory, so a symlink
swapped in for the directory after the check is not followed either. Before import the file is opened with
``O_NOFOLLOW``, its bytes are read once and checked against the hash, and those same bytes are compiled and
executed (``linecache`` is primed with them, so ``inspect.getsource`` and Triton see the verified text). A
cached file that fails the check is removed with a ``RuntimeWarning`` and written again.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.abc
import importlib.util
import linecache
import os
import secrets
import stat
import sys
import types
import warnings

ENV_VAR = "TPJAX_TRITON_GEN_DIR"
MODULE_PREFIX = "tpjax_triton_gen_"
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # NONBLOCK: a planted FIFO can't hang us
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafeCacheDirError(PermissionError):
    """The kernel cache directory is not private to the current user (or is not a real directory)."""


def default_dir() -> str:
    """The cache directory's path (not created): ``$TPJAX_TRITON_GEN_DIR``, else the user's cache home."""
    override = os.environ.get(ENV_VAR)
    if override:
        return os.path.abspath(os.path.expanduser(override))
    home = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(home):  # the XDG spec says to ignore relative values
        home = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(home, "tpjax", "triton")


def _refuse(path: str, problem: str) -> UnsafeCacheDirError:
    return UnsafeCacheDirError(
        f"tpjax: refusing to use {path!r} as the generated-kernel cache: {problem}. Another user could make this "
        f"process execute their code through it. Remove it (tpjax recreates it with mode 0o700), or set "
        f"{ENV_VAR} to a directory that is yours and not writable by group or others."
    )


def _check_stat(path: str, st: os.stat_result) -> None:
    if stat.S_ISLNK(st.st_mode):
        raise _refuse(path, "it is a symlink (the cache must be a real directory)")
    if not stat.S_ISDIR(st.st_mode):
        raise _refuse(path, "it is not a directory")
    if st.st_uid != os.getuid():
        raise _refuse(path, f"it is owned by uid {st.st_uid}, not by the current user (uid {os.getuid()})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise _refuse(path, f"it is writable by group or others (mode {stat.S_IMODE(st.st_mode):#o})")


def _open_dir(path: str) -> int:
    """Create ``path`` (0o700) if missing, check it, and return an open descriptor of the checked directory."""
    created = False
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        try:
            os.mkdir(path, 0o700)
            created = True
        except FileExistsError:
            pass  # made concurrently: checked below like any existing directory
        st = os.lstat(path)
    _check_stat(path, st)
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError as e:  # replaced by a symlink (ELOOP) or a file (ENOTDIR) since the lstat
        raise _refuse(path, f"it changed while being checked ({e.strerror})") from e
    try:
        fst = os.fstat(fd)
        if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
            raise _refuse(path, "it was replaced while being checked")
        _check_stat(path, fst)
        if created:
            os.fchmod(fd, 0o700)  # exactly 0o700 whatever the umask
        return fd
    except BaseException:
        os.close(fd)
        raise


def check_dir(path: str) -> None:
    """Raise :class:`UnsafeCacheDirError` unless ``path`` is a real directory, owned by the current user and not
    group/world writable (it is created with mode 0o700 if missing)."""
    os.close(_open_dir(path))


def cache_dir() -> str:
    """The checked cache directory (created with mode 0o700 if missing)."""
    path = default_dir()
    check_dir(path)
    return path


def digest(source: str) -> str:
    """The sha256 hex digest of ``source`` (UTF-8): the cached file is ``<digest>.py``."""
    return hashlib.sha256(source.encode()).hexdigest()


def _temp_name(hexdigest: str) -> str:
    return f".{hexdigest[:16]}.{secrets.token_hex(8)}.tmp"


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_atomic(dfd: int, name: str, data: bytes) -> None:
    """Write ``data`` to ``name`` in the directory ``dfd``: an exclusive temp file, fsync, atomic rename.
    On any exception (KeyboardInterrupt included) the temp file is removed and ``name`` is untouched."""
    for _ in range(100):
        tmp = _temp_name(name)
        try:
            fd = os.open(tmp, _CREATE_FLAGS, 0o600, dir_fd=dfd)
            break
        except FileExistsError:  # a name collision, or something planted there: never reuse it
            continue
    else:
        raise FileExistsError(errno.EEXIST, "tpjax: could not create a fresh temporary file in the kernel cache")
    done = False
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        done = True
        os.fsync(dfd)
    finally:
        if not done:
            try:
                os.unlink(tmp, dir_fd=dfd)
            except FileNotFoundError:
                pass


def _read_verified(dfd: int, name: str, path: str, data: bytes, hexdigest: str) -> bytes | None:
    """The bytes of ``name`` if it is a regular file of ours whose sha256 is ``hexdigest``; else None (a
    file that fails the check is removed with a warning)."""
    try:
        fd = os.open(name, _READ_FLAGS, dir_fd=dfd)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
        return _discard(dfd, name, path, "it is a symlink")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return _discard(dfd, name, path, "it is not a regular file private to the current user")
        chunks, left = [], len(data) + 1  # one byte more than expected reveals a longer file
        while left > 0 and (chunk := os.read(fd, left)):
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    got = b"".join(chunks)
    if hashlib.sha256(got).hexdigest() != hexdigest:
        return _discard(dfd, name, path, "its contents do not match its sha256 name")
    return got


def _discard(dfd: int, name: str, path: str, problem: str) -> None:
    warnings.warn(f"tpjax: cached kernel source {path!r} was tampered with ({problem}); removed and regenerated",
                  RuntimeWarning, stacklevel=4)  # fmt: skip
    os.unlink(name, dir_fd=dfd)  # unlink never follows a symlink
    return None


def store(source: str) -> tuple[str, bytes]:
    """Make sure the cache holds ``source`` as ``<digest>.py`` and return (its path, its verified bytes):
    the file is written if missing, rewritten if tampered with, and read back and checked against the hash."""
    data = source.encode()
    hexdigest = hashlib.sha256(data).hexdigest()
    dirpath = default_dir()
    name = hexdigest + ".py"
    path = os.path.join(dirpath, name)
    dfd = _open_dir(dirpath)
    try:
        for _ in range(2):
            got = _read_verified(dfd, name, path, data, hexdigest)
            if got is not None:
                return path, got
            _write_atomic(dfd, name, data)
    finally:
        os.close(dfd)
    raise RuntimeError(f"tpjax: {path!r} changed between writing and reading it back; is another process "
                       f"writing to {dirpath!r}?")  # fmt: skip


class _VerifiedSourceLoader(importlib.abc.Loader):
    """Executes exactly the bytes it was given (already checked against their hash)."""

    def __init__(self, path: str, data: bytes):
        self.path, self.data = path, data

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        code = compile(self.data, self.path, "exec", dont_inherit=True)
        exec(code, module.__dict__)

    def get_source(self, fullname: str) -> str:
        return self.data.decode()


def load_module(source: str) -> types.ModuleType:
    """Store ``source`` in the cache (see :func:`store`) and import it as ``tpjax_triton_gen_<digest[:16]>``
    from the verified bytes; ``__file__`` is the cached file and ``linecache`` holds the verified text, so
    ``inspect.getsource`` (Triton's JIT) sees exactly what was executed."""
    path, data = store(source)
    name = MODULE_PREFIX + digest(source)[:16]
    loader = _VerifiedSourceLoader(path, data)
    spec = importlib.util.spec_from_loader(name, loader, origin=path)
    spec.has_location = True  # module_from_spec then sets __file__ = path
    module = importlib.util.module_from_spec(spec)
    text = data.decode()
    linecache.cache[path] = (len(data), None, text.splitlines(True), path)  # mtime None: never re-read from disk
    sys.modules[name] = module
    try:
        loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
