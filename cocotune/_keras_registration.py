"""Make ``keras.saving.load_model`` find cocotune's Keras classes after ``import cocotune``.

Every cocotune layer, loss layer, schedule and optimizer is registered with Keras as
``cocotune>Name`` (``keras.saving.register_keras_serializable(package="cocotune")``), and a
saved ``.keras`` file records that name. Keras 3 resolves such a name only from its in-memory
registry: it has no entry-point or plug-in lookup, and it imports a class's module by itself
only for its own packages (``keras``, ``keras_hub``...). So the modules defining the classes
must have run before ``load_model``.

``import cocotune`` arranges that without importing TensorFlow itself (it stays a light
import): if Keras is already imported, the modules are imported at once; otherwise a one-shot
import hook imports them right after the first ``import keras`` finishes. Either way a user
needs only ``import cocotune`` before ``keras.saving.load_model(path)``.
"""

from __future__ import annotations

import importlib
import sys
import warnings

# The modules whose import registers cocotune's serialisable Keras classes.
REGISTERING_MODULES = (
    "cocotune.runtime.layers",
    "cocotune.runtime.model",
    "cocotune.runtime.solver",
)


def register_keras_objects() -> None:
    """Import every module that registers ``cocotune>...`` classes with Keras.

    A failure is reported as a warning, never raised: it runs inside the user's
    ``import keras``, which must not break because of cocotune.
    """
    for name in REGISTERING_MODULES:
        try:
            importlib.import_module(name)
        except Exception as exc:
            warnings.warn(
                f"cocotune could not register its Keras classes from {name} ({exc}); "
                "saved models using them will not load",
                RuntimeWarning,
                stacklevel=2,
            )


class _RegisteringLoader:
    """Wraps Keras' own loader: executes the ``keras`` package, then registers ours."""

    def __init__(self, loader) -> None:
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        self._loader.exec_module(module)
        uninstall()  # one shot: Keras is loaded now
        register_keras_objects()

    def __getattr__(self, name):  # resource readers, get_filename, ... of the real loader
        return getattr(self._loader, name)


class _AfterKerasImport:
    """A ``sys.meta_path`` finder that only watches for the top-level ``keras`` package."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "keras":
            return None
        # Stay installed until Keras is executed: TensorFlow probes with
        # importlib.util.find_spec("keras") before it imports Keras.
        for finder in sys.meta_path:
            if finder is self:
                continue
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec(fullname, path, target) if find_spec is not None else None
            if spec is not None:
                if spec.loader is not None:
                    spec.loader = _RegisteringLoader(spec.loader)
                return spec
        return None


_FINDER = _AfterKerasImport()


def install() -> None:
    """Register now if Keras is loaded, else right after it is (see the module docstring)."""
    if "keras" in sys.modules:
        register_keras_objects()
    elif _FINDER not in sys.meta_path:
        sys.meta_path.insert(0, _FINDER)


def uninstall() -> None:
    if _FINDER in sys.meta_path:
        sys.meta_path.remove(_FINDER)
