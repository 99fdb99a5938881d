"""cocotune: compression-compilation co-design for CNNs described in Caffe Prototxt.

The frontend (``cocotune.frontend``) reads Prototxt exactly as Caffe does, extended with
``module { ... }`` blocks; ``cocotune.ir`` holds the net and its Caffe-exact shapes. Importing
this package never imports TensorFlow: commands such as ``cocotune check`` answer instantly.

Saved models load with plain ``keras.saving.load_model`` once ``cocotune`` is imported: the
import registers cocotune's Keras layers (``cocotune>CaffePooling2D``...) as soon as Keras
itself is imported, without importing Keras early (see ``cocotune._keras_registration``).
"""

import os as _os

# TensorFlow's C++ start-up banner is noise for a command-line tool; users can still set it.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

from cocotune import _keras_registration

_keras_registration.install()

__all__ = ["__version__", "load_net"]


def load_net(path, *, phase="TEST", input_shapes=None):
    """Parse a Prototxt file and return its :class:`cocotune.ir.net.Net` with shapes inferred.

    Thin convenience over :func:`cocotune.frontend.load.load_net` so that users need one import.
    """
    from cocotune.frontend.load import load_net as _load_net

    return _load_net(path, phase=phase, input_shapes=input_shapes)
