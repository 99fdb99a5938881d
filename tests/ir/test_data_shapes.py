"""Data layers without --input-shape: what Caffe's transform fixes is inferred, the rest asked.

Caffe's DataTransformer gives a data blob (batch_size, channels, crop_size, crop_size) when
crop_size is set; ImageData resizes to new_height x new_width and reads colour unless
is_color is false; a mean_value list longer than one must have one value per channel.
"""

from __future__ import annotations

import json

import pytest

from cocotune.errors import ShapeError
from cocotune.frontend.load import load_net


def data_net(layer: str) -> str:
    return (
        f'layer {{ name: "d" top: "data" top: "label"\n{layer}\n}}\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"\n'
        "  inner_product_param { num_output: 2 } }\n"
    )


CASES = [
    # (id, layer body, shape, what the note says)
    (
        "crop and three means",
        'type: "Data" transform_param { crop_size: 32 mean_value: 1 mean_value: 2 mean_value: 3 }\n'
        'data_param { source: "x" batch_size: 4 }',
        (4, 3, 32, 32),
        "N=4 from data_param.batch_size (line 3); C=3 from 3 mean_value (line 2); "
        "H,W=32,32 from transform_param.crop_size (line 2)",
    ),
    (
        "force_gray",
        'type: "Data" transform_param { crop_size: 28 force_gray: true }\n'
        'data_param { source: "x" batch_size: 2 }',
        (2, 1, 28, 28),
        "C=1 from transform_param.force_gray (line 2, decoding encoded images)",
    ),
    (
        "force_encoded_color",
        'type: "Data" transform_param { crop_size: 8 }\n'
        'data_param { source: "x" batch_size: 2 force_encoded_color: true }',
        (2, 3, 8, 8),
        "C=3 from data_param.force_encoded_color (line 3, decoding encoded images)",
    ),
    (
        "image data resized, grey",
        'type: "ImageData" image_data_param { source: "l.txt" batch_size: 5 new_height: 20\n'
        "new_width: 30 is_color: false }",
        (5, 1, 20, 30),
        "N=5 from image_data_param.batch_size (line 2); C=1 from image_data_param.is_color "
        "(line 3); H=20 from image_data_param.new_height (line 2); W=30 from "
        "image_data_param.new_width (line 3)",
    ),
    (
        "image data crop wins over resize",
        'type: "ImageData" transform_param { crop_size: 16 }\n'
        'image_data_param { source: "l.txt" new_height: 20 new_width: 30 }',
        (1, 3, 16, 16),
        "N=1 from image_data_param.batch_size (default 1); C=3 from image_data_param.is_color "
        "(default true); H,W=16,16 from transform_param.crop_size (line 2)",
    ),
    (
        "window data",
        'type: "WindowData" window_data_param { source: "w.txt" batch_size: 3 crop_size: 12 }',
        (3, 3, 12, 12),
        "C=3 from WindowData (always reads colour images)",
    ),
]


@pytest.mark.parametrize("body,shape,said", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_shape_inferred_from_the_fields(write_net, body, shape, said):
    net = load_net(write_net(data_net(body)))
    assert net.final_blobs()["data"].shape == shape
    assert net.final_blobs()["label"].shape == shape[:1]
    assert (
        net.notes
        == [
            f"layer 'd' ({net.layers[0].type}): 'data' {'x'.join(map(str, shape))} inferred from "
            f"the file: {said}"
        ]
        or said in net.notes[0]
    )
    assert said in net.notes[0]


ASKS = [
    # (id, layer body, the --input-shape asked for, the reason given)
    (
        "crop, one mean value",
        'type: "Data" transform_param { crop_size: 32 mean_value: 128 }\n'
        'data_param { source: "x" batch_size: 4 }',
        "data=4,C,32,32",
        "C is unknown (they are stored with the images in the database; one mean_value per "
        "channel would tell C)",
    ),
    (
        "means, no crop",
        'type: "Data" transform_param { mean_value: 1 mean_value: 2 mean_value: 3 }\n'
        'data_param { source: "x" batch_size: 4 }',
        "data=4,3,H,W",
        "H, W are unknown (they are stored with the images in the database; "
        "transform_param.crop_size would tell H and W)",
    ),
    (
        "nothing",
        'type: "Data" data_param { source: "x" }',
        "data=N,C,H,W",
        "the file determines none of it; N, C, H, W are unknown",
    ),
    (
        "image data at its own size",
        'type: "ImageData" image_data_param { source: "l.txt" }',
        "data=1,3,H,W",
        "images keep their own size without crop_size or new_height/new_width",
    ),
    (
        "hdf5",
        'type: "HDF5Data" hdf5_data_param { source: "h.txt" batch_size: 7 }',
        "data=7,C,H,W",
        "they are the shape of the datasets in the HDF5 files",
    ),
]


@pytest.mark.parametrize("body,spec,why", [c[1:] for c in ASKS], ids=[c[0] for c in ASKS])
def test_asks_only_for_what_is_unknown(write_net, body, spec, why):
    with pytest.raises(ShapeError) as info:
        load_net(write_net(data_net(body)))
    assert info.value.message.endswith(f"give --input-shape {spec}")
    assert why in info.value.message
    assert (info.value.line, info.value.col) == (2, 7)  # the layer's type


def test_input_shape_option_wins_and_no_note(write_net):
    path = write_net(
        data_net(
            'type: "Data" transform_param { crop_size: 32 mean_value: 1 mean_value: 2 mean_value: 3 }\n'
            'data_param { source: "x" batch_size: 4 }'
        )
    )
    net = load_net(path, input_shapes={"data": (1, 3, 40, 40)})
    assert net.final_blobs()["data"].shape == (1, 3, 40, 40)
    assert net.notes == []


def test_check_prints_the_inference(run_cli, write_net):
    path = write_net(
        data_net(
            'type: "Data" transform_param { crop_size: 8 mean_value: 1 mean_value: 2 mean_value: 3 }\n'
            'data_param { source: "x" batch_size: 2 }'
        )
    )
    result = run_cli("check", path)
    assert result.code == 0, result.err
    assert "(2,3,8,8)" in result.out
    assert result.err == (
        "note: layer 'd' (Data): 'data' 2x3x8x8 inferred from the file: N=2 from "
        "data_param.batch_size (line 3); C=3 from 3 mean_value (line 2); H,W=8,8 from "
        "transform_param.crop_size (line 2)\n"
    )
    data = json.loads(run_cli("check", path, "--json").out)
    assert data["notes"] == [result.err[len("note: ") : -1]]
