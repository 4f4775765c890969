"""Tiny hand-built ONNX classifiers (conv -> relu -> global pool -> Gemm) for the tests,
with the weights kept so a test can compute the reference in torch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


@dataclass(frozen=True)
class TinyOnnx:
    model: onnx.ModelProto
    conv_w: np.ndarray  # (hidden, C, 3, 3)
    conv_b: np.ndarray
    fc_w: np.ndarray  # (classes, hidden)
    fc_b: np.ndarray

    def to_bytes(self) -> bytes:
        return self.model.SerializeToString()


def tiny_onnx(channels: int, classes: int, hidden: int = 6, seed: int = 0) -> TinyOnnx:
    rng = np.random.default_rng(seed)
    conv_w = rng.normal(0, 0.5, (hidden, channels, 3, 3)).astype(np.float32)
    conv_b = rng.normal(0, 0.1, hidden).astype(np.float32)
    fc_w = rng.normal(0, 0.5, (classes, hidden)).astype(np.float32)
    fc_b = rng.normal(0, 0.1, classes).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "conv_w", "conv_b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["pooled"]),
        helper.make_node("Gemm", ["pooled", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, "H", "W"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])],
        [
            numpy_helper.from_array(conv_w, "conv_w"),
            numpy_helper.from_array(conv_b, "conv_b"),
            numpy_helper.from_array(fc_w, "fc_w"),
            numpy_helper.from_array(fc_b, "fc_b"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return TinyOnnx(model, conv_w, conv_b, fc_w, fc_b)


def with_custom_op(tiny: TinyOnnx) -> bytes:
    model = onnx.ModelProto()
    model.CopyFrom(tiny.model)
    model.graph.node[1].op_type = "FancyRelu"
    model.graph.node[1].domain = "com.example.evil"
    model.opset_import.append(helper.make_opsetid("com.example.evil", 1))
    return model.SerializeToString()


def with_external_data(tiny: TinyOnnx, location: str = "../../etc/passwd") -> bytes:
    model = onnx.ModelProto()
    model.CopyFrom(tiny.model)
    weight = model.graph.initializer[0]
    weight.ClearField("raw_data")
    weight.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", "64")):
        entry = weight.external_data.add()
        entry.key, entry.value = key, value
    return model.SerializeToString()


def without_classifier(tiny: TinyOnnx) -> bytes:
    model = onnx.ModelProto()
    model.CopyFrom(tiny.model)
    del model.graph.node[4]
    del model.graph.output[0]
    model.graph.output.append(
        helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["N", tiny.conv_w.shape[0]])
    )
    return model.SerializeToString()
