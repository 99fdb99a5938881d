"""The conversion table: Caffe type → emitter, and the whole-net support check.

Like TVM's Caffe frontend, the net is checked as a whole before anything is written: every
unsupported type and every field value that cannot be converted exactly is reported at once,
with its position.
"""

from __future__ import annotations

from cocotune.convert.emitters.activations import SIMPLE_EMITTERS, PReLUEmitter, ReLUEmitter
from cocotune.convert.emitters.base import Emitter, Unsupported
from cocotune.convert.emitters.combine import (
    AxpyEmitter,
    ConcatEmitter,
    CropEmitter,
    EltwiseEmitter,
    ShuffleChannelEmitter,
    SliceEmitter,
    SplitEmitter,
)
from cocotune.convert.emitters.conv import ConvolutionEmitter, DeconvolutionEmitter
from cocotune.convert.emitters.dense import EmbedEmitter, InnerProductEmitter
from cocotune.convert.emitters.io import InputEmitter, TrainingOnlyEmitter
from cocotune.convert.emitters.norm import BatchNormEmitter, LRNEmitter, MVNEmitter, ScaleEmitter
from cocotune.convert.emitters.pooling import PoolingEmitter
from cocotune.convert.emitters.shape import (
    ArgMaxEmitter,
    FlattenEmitter,
    ReductionEmitter,
    ReshapeEmitter,
    SoftmaxEmitter,
    TileEmitter,
)
from cocotune.errors import CocotuneError, ErrorGroup, UnsupportedLayerError
from cocotune.ir.catalogue import CATALOGUE
from cocotune.ir.net import Net


def _table(*emitters: Emitter) -> dict[str, Emitter]:
    """Caffe type -> emitter, keyed by each emitter's ``types``.

    Each type's catalogue entry names the emitter class that converts it; the two must agree,
    so that a type is never half added (an emitter for a type the catalogue does not know, or
    a catalogue entry whose emitter was never registered).
    """
    table: dict[str, Emitter] = {}
    for emitter in emitters:
        for caffe_type in emitter.types:
            assert caffe_type not in table, caffe_type
            table[caffe_type] = emitter
    named = {name: entry.emitter for name, entry in CATALOGUE.items() if entry.emitter}
    registered = {name: type(emitter).__name__ for name, emitter in table.items()}
    assert named == registered, {
        name: (named.get(name), registered.get(name))
        for name in set(named) | set(registered)
        if named.get(name) != registered.get(name)
    }
    return dict(sorted(table.items()))


EMITTERS: dict[str, Emitter] = _table(
    ArgMaxEmitter(), AxpyEmitter(), BatchNormEmitter(), ConcatEmitter(), ConvolutionEmitter(),
    CropEmitter(), DeconvolutionEmitter(), EltwiseEmitter(), EmbedEmitter(), FlattenEmitter(),
    InnerProductEmitter(), InputEmitter(), LRNEmitter(), MVNEmitter(), PoolingEmitter(),
    PReLUEmitter(), ReductionEmitter(), ReLUEmitter(), ReshapeEmitter(), ScaleEmitter(),
    ShuffleChannelEmitter(), SliceEmitter(), SoftmaxEmitter(), SplitEmitter(), TileEmitter(),
    TrainingOnlyEmitter(), *SIMPLE_EMITTERS,
)  # fmt: skip


def check_convertible(net: Net) -> None:
    """Raise one error listing every layer that cannot be converted exactly."""
    problems: list[CocotuneError] = []
    for layer in net.layers:
        emitter = EMITTERS.get(layer.type)
        if emitter is None:
            entry = CATALOGUE.get(layer.type)
            why = f" ({entry.unsupported})" if entry is not None and entry.unsupported else ""
            problems.append(net.source.error_at(
                UnsupportedLayerError,
                f"layer '{layer.name}': type '{layer.type}' has shapes but no TensorFlow "
                f"conversion yet{why}", layer.pos("type")))  # fmt: skip
            continue
        try:
            emitter.check(layer)
        except Unsupported as exc:
            problems.append(net.source.error_at(
                UnsupportedLayerError,
                f"layer '{layer.name}' ({layer.type}): {exc.message} cannot be converted",
                layer.pos(exc.field_path)))  # fmt: skip
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ErrorGroup(f"{len(problems)} layers cannot be converted to TensorFlow", problems)
