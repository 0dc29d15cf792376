"""Where numba keeps its on-disk cache of compiled kernels (must run before numba compiles).

numba caches next to the source (``fastnewton/**/__pycache__``). On a read-only install
(a site-packages owned by root, a container image, a shared cluster module) that fails,
and numba falls back to ``~/.cache/numba``; where the home directory is not writable
either (some compute nodes), every ``@njit(cache=True)`` decoration fails at import.
:func:`configure_numba_cache` avoids both: unless the user set ``NUMBA_CACHE_DIR``, it
points numba at the first writable one of

1. ``$FASTNEWTON_CACHE_DIR``,
2. ``$XDG_CACHE_HOME/fastnewton/numba`` (default ``~/.cache/fastnewton/numba``),
3. ``<tempdir>/fastnewton-numba-<uid>``,

but only when the package directory itself is not writable. It must run before the
kernel modules are imported (``fastnewton/__init__.py`` calls it first); numba reads
``NUMBA_CACHE_DIR`` when it is imported, so it is also written to ``numba.config``
when numba was imported earlier.
"""

from __future__ import annotations

import os
import sys
import tempfile

__all__ = ["configure_numba_cache", "candidate_cache_dirs"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _writable_dir(path):
    """Create ``path`` if needed and check that a file can be created in it."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError:
        return False
    return True


def candidate_cache_dirs(environ=None):
    """User cache directories to try, in order (see the module docstring)."""
    env = os.environ if environ is None else environ
    out = []
    if env.get("FASTNEWTON_CACHE_DIR"):
        out.append(env["FASTNEWTON_CACHE_DIR"])
    xdg = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    out.append(os.path.join(xdg, "fastnewton", "numba"))
    uid = os.getuid() if hasattr(os, "getuid") else "user"
    out.append(os.path.join(tempfile.gettempdir(), f"fastnewton-numba-{uid}"))
    return out


def configure_numba_cache(package_dir=None, environ=None, writable=_writable_dir):
    """Point numba's cache at a writable user directory if the package dir is read-only.

    Returns the directory chosen, or None when nothing was changed (``NUMBA_CACHE_DIR``
    already set, or the package directory is writable).
    """
    env = os.environ if environ is None else environ
    if env.get("NUMBA_CACHE_DIR"):
        return None
    package_dir = _PACKAGE_DIR if package_dir is None else package_dir
    if writable(os.path.join(package_dir, "__pycache__")):
        return None
    for path in candidate_cache_dirs(env):
        if writable(path):
            env["NUMBA_CACHE_DIR"] = path
            config = sys.modules.get("numba.core.config")
            if config is not None and environ is None:
                config.CACHE_DIR = path
            return path
    return None
