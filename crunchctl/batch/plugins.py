"""Which loader ``--loader`` names, and importing user plugins.

``--loader`` is a built-in name (``iq``, ``npz``), ``package.module:function`` or
``path/to/file.py:function``; :func:`parse_spec` makes it a small picklable ``LoaderSpec``
and :func:`plugin_function` imports a plugin (in the main process to check it before any
work, and again in each worker). The built-in loaders are in ``loaders.py``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crunchctl.errors import UsageError

BUILTINS = ("iq", "npz")
AUTO = "auto"


@dataclass(frozen=True)
class LoaderSpec:
    """A resolved ``--loader``: small and picklable; workers import the plugin themselves.

    ``kind`` is ``iq``, ``npz``, ``module`` or ``file``; ``target`` the module name or the
    absolute file path; ``function`` the plugin's function; ``sys_path`` folders put on
    ``sys.path`` before importing (the plugin file's folder, the working directory).
    """

    kind: str
    target: str = ""
    function: str = ""
    sys_path: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        if self.kind in BUILTINS:
            return self.kind
        return f"{self.target}:{self.function}"

    @property
    def display(self) -> str:
        """A short name for messages: the plugin file's name rather than its full path."""
        if self.kind == "file":
            return f"{os.path.basename(self.target)}:{self.function}"
        return self.name


def parse_spec(spec: str, *, cwd: str | None = None) -> LoaderSpec:
    """Parse ``--loader``: ``iq``, ``npz``, ``package.module:function`` or ``file.py:function``.

    Raises:
        UsageError: the text has none of these forms.
    """
    spec = spec.strip()
    if spec in BUILTINS:
        return LoaderSpec(spec)
    target, sep, function = spec.rpartition(":")
    hint = "expected iq, npz, package.module:function or path/to/file.py:function"
    if not sep or not target or not function.isidentifier():
        raise UsageError(f"--loader {spec!r}: {hint}")
    cwd = os.path.abspath(cwd or os.getcwd())
    if target.endswith(".py") or os.sep in target or "/" in target:
        path = os.path.abspath(os.path.join(cwd, os.path.expanduser(target)))
        return LoaderSpec("file", path, function, (os.path.dirname(path),))
    if not all(part.isidentifier() for part in target.split(".")):
        raise UsageError(f"--loader {spec!r}: {target!r} is not a module name; {hint}")
    return LoaderSpec("module", target, function, (cwd,))


def plugin_function(spec: LoaderSpec) -> Callable[..., Any]:
    """Import a plugin and return its loader function.

    Raises:
        UsageError: the module or file cannot be imported, lacks the function, or the
            function is not callable.
    """
    module = _import(spec)
    what = f"--loader {spec.name}"
    if not hasattr(module, spec.function):
        public = sorted(
            n
            for n, v in vars(module).items()
            if callable(v)
            and not n.startswith("_")
            and getattr(v, "__module__", None) == module.__name__
        )
        known = f" (it has: {', '.join(public)})" if public else ""
        raise UsageError(f"{what}: {spec.target} has no function {spec.function!r}{known}")
    fn = getattr(module, spec.function)
    if not callable(fn):
        raise UsageError(
            f"{what}: {spec.function!r} in {spec.target} is not callable "
            f"(it is a {type(fn).__name__})"
        )
    return fn


def _import(spec: LoaderSpec) -> Any:
    what = f"--loader {spec.name}"
    for folder in spec.sys_path:
        if folder not in sys.path:
            # A plugin file's folder goes first (as `python file.py` does); the working
            # directory last, so installed packages win over stray files.
            if spec.kind == "file":
                sys.path.insert(0, folder)
            else:
                sys.path.append(folder)
    try:
        if spec.kind == "module":
            return importlib.import_module(spec.target)
        if not os.path.isfile(spec.target):
            raise UsageError(f"{what}: no such file {spec.target}")
        import hashlib

        name = "crunchctl_plugin_" + hashlib.sha1(spec.target.encode()).hexdigest()[:10]
        if name in sys.modules:
            return sys.modules[name]
        mod_spec = importlib.util.spec_from_file_location(name, spec.target)
        if mod_spec is None or mod_spec.loader is None:
            raise UsageError(f"{what}: {spec.target} cannot be imported as Python")
        module = importlib.util.module_from_spec(mod_spec)
        sys.modules[name] = module
        try:
            mod_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    except UsageError:
        raise
    except ModuleNotFoundError as e:
        raise UsageError(
            f"{what}: cannot import {spec.target}: {e} (is it installed, or on PYTHONPATH?)"
        ) from None
    except Exception as e:  # noqa: BLE001 - the plugin's own import-time errors
        raise UsageError(
            f"{what}: importing {spec.target} failed: {type(e).__name__}: {e}"
        ) from None
