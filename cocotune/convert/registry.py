"""The conversion table: Caffe type → emitter, and the whole-net support check.

Like TVM's Caffe frontend, the net is checked as a whole before anything is written: every
unsupported type and every field value that cannot be converted exactly is reported at once,
with its position.
"""

from __future__ import annotations

from collections.abc import Mapping

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


def _table(emitters: list[Emitter], per_type: Mapping[str, Emitter]) -> dict[str, Emitter]:
    """Caffe type -> emitter, as each type's catalogue entry names it (``LayerType.emitter``).

    The catalogue is the one list of types: an emitter class is converted to by name, and
    ``per_type`` holds the emitters configured per type (SimpleEmitter's Keras constructors),
    which must cover exactly the types whose entries name their class. So a type is never half
    added: an entry naming an emitter that does not exist, or a configured emitter for a type
    the catalogue does not send to it, stops the import.
    """
    by_class = {type(emitter).__name__: emitter for emitter in emitters}
    assert len(by_class) == len(emitters), "one instance per emitter class"
    table: dict[str, Emitter] = {}
    for name, entry in CATALOGUE.items():
        if not entry.emitter:
            continue
        emitter = per_type.get(name) or by_class.get(entry.emitter)
        assert emitter is not None and type(emitter).__name__ == entry.emitter, (
            name,
            entry.emitter,
        )
        table[name] = emitter
    stray = sorted(set(per_type) - set(table))
    assert not stray, f"emitters for types whose catalogue entries do not name them: {stray}"
    return dict(sorted(table.items()))


EMITTERS: dict[str, Emitter] = _table(
    [
        ArgMaxEmitter(),
        AxpyEmitter(),
        BatchNormEmitter(),
        ConcatEmitter(),
        ConvolutionEmitter(),
        CropEmitter(),
        DeconvolutionEmitter(),
        EltwiseEmitter(),
        EmbedEmitter(),
        FlattenEmitter(),
        InnerProductEmitter(),
        InputEmitter(),
        LRNEmitter(),
        MVNEmitter(),
        PoolingEmitter(),
        PReLUEmitter(),
        ReductionEmitter(),
        ReLUEmitter(),
        ReshapeEmitter(),
        ScaleEmitter(),
        ShuffleChannelEmitter(),
        SliceEmitter(),
        SoftmaxEmitter(),
        SplitEmitter(),
        TileEmitter(),
        TrainingOnlyEmitter(),
    ],
    SIMPLE_EMITTERS,
)


def check_convertible(net: Net) -> None:
    """Raise one error listing every layer that cannot be converted exactly."""
    problems: list[CocotuneError] = []
    for layer in net.layers:
        emitter = EMITTERS.get(layer.type)
        if emitter is None:
            entry = CATALOGUE.get(layer.type)
            why = f" ({entry.unsupported})" if entry is not None and entry.unsupported else ""
            problems.append(
                net.source.error_at(
                    UnsupportedLayerError,
                    f"layer '{layer.name}': type '{layer.type}' has shapes but no TensorFlow "
                    f"conversion yet{why}",
                    layer.pos("type"),
                )
            )
            continue
        try:
            emitter.check(layer)
        except Unsupported as exc:
            problems.append(
                net.source.error_at(
                    UnsupportedLayerError,
                    f"layer '{layer.name}' ({layer.type}): {exc.message} cannot be converted",
                    layer.pos(exc.field_path),
                )
            )
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ErrorGroup(f"{len(problems)} layers cannot be converted to TensorFlow", problems)
