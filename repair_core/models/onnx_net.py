"""Deployed models as ONNX graphs, run with onnxruntime on the CPU.

`prepare_onnx` checks an untrusted graph (no external data, no custom-op domains, the
`onnx` checker) and exposes the penultimate tensor, the input of the last Gemm/MatMul,
as a second graph output; `OnnxNet` runs the prepared graph as an nn.Module without
parameters, so confirmation and K-center treat it like any other deployed model. The
graph takes normalised input: the normalisation is applied before it, in torch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from repair_core.errors import RepairInputError
from repair_core.models.spec import InputSpec
from repair_core.search.normalize import Normalize

# Operator domains of the standard ops onnxruntime ships; anything else is a custom op.
STANDARD_DOMAINS = frozenset({"", "ai.onnx", "ai.onnx.ml"})
FEATURES_OUTPUT = "repair_core_features"  # the name the prepared graph's extra output gets


@dataclass(frozen=True)
class PreparedOnnx:
    data: bytes  # the graph with the penultimate tensor as its last output
    input_name: str
    logits_name: str
    features_name: str
    params: int  # elements of all initializers


def prepare_onnx(data: bytes) -> PreparedOnnx:
    """Check an uploaded ONNX graph and add the penultimate output; RepairInputError if bad."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        # From bytes, onnx resolves no external data: there is no directory to read from.
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise RepairInputError(f"not a readable ONNX model: {exc}") from None
    graph = model.graph
    _refuse_external_data(model)
    used = {o.domain for o in model.opset_import} | {n.domain for n in graph.node}
    domains = sorted(used - STANDARD_DOMAINS)
    if domains:
        raise RepairInputError(
            f"the ONNX graph uses custom-op domains {domains[:5]}: only the standard ONNX "
            "operators are accepted"
        )
    try:
        onnx.checker.check_model(model)
    except onnx.checker.ValidationError as exc:
        raise RepairInputError(f"the ONNX checker refused the graph: {exc}") from None
    initializers = {t.name for t in graph.initializer}
    inputs = [i.name for i in graph.input if i.name not in initializers]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise RepairInputError(
            f"the ONNX graph needs one image input and one logits output, it has inputs "
            f"{inputs[:5]} and outputs {[o.name for o in graph.output][:5]}"
        )
    heads = [n for n in graph.node if n.op_type in ("Gemm", "MatMul")]
    if not heads:
        raise RepairInputError(
            "found no Gemm or MatMul node in the ONNX graph: the penultimate features (the "
            "input of the final classifier) cannot be located"
        )
    penultimate = heads[-1].input[0]
    graph.output.append(onnx.helper.make_empty_tensor_value_info(penultimate))
    params = sum(int(np.prod(t.dims)) for t in graph.initializer)
    return PreparedOnnx(
        model.SerializeToString(), inputs[0], graph.output[0].name, penultimate, params
    )


def _refuse_external_data(model: object) -> None:
    import onnx

    assert isinstance(model, onnx.ModelProto)
    tensors = list(model.graph.initializer)
    for node in model.graph.node:
        tensors += [a.t for a in node.attribute if a.HasField("t")]
        tensors += [t for a in node.attribute for t in a.tensors]
    for t in tensors:
        if t.data_location == onnx.TensorProto.EXTERNAL or len(t.external_data):
            where = next((e.value for e in t.external_data if e.key == "location"), "?")
            raise RepairInputError(
                f"the ONNX tensor {t.name!r} references external data (location {where!r}): "
                "upload a self-contained .onnx file"
            )


class OnnxNet(nn.Module):
    """A prepared ONNX graph as a module: `forward` gives logits, `features` the
    penultimate tensor. Runs on the CPU whatever the input's device; outputs go back there."""

    def __init__(self, prepared: PreparedOnnx, spec: InputSpec, *, threads: int = 1) -> None:
        super().__init__()
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.normalize = Normalize(spec.mean, spec.std)
        self.session = ort.InferenceSession(
            prepared.data, sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.prepared = prepared
        batch = self.session.get_inputs()[0].shape[0]
        # A graph exported with a fixed batch size of 1 is fed one image at a time.
        self._one_at_a_time = batch == 1

    def _run(self, x: torch.Tensor, output: str) -> torch.Tensor:
        # onnxruntime reads dense NCHW float32 (a channels_last or bf16 batch is converted).
        normalized = self.normalize(x).detach().to("cpu", torch.float32).contiguous().numpy()
        chunks = [normalized[i : i + 1] for i in range(len(normalized))]
        if not self._one_at_a_time:
            chunks = [normalized]
        try:
            outs = [
                self.session.run([output], {self.prepared.input_name: chunk})[0] for chunk in chunks
            ]
        except Exception as exc:  # onnxruntime raises its own exception types
            raise RepairInputError(
                f"the ONNX model failed on input shape {tuple(x.shape)}: {exc}"
            ) from None
        return torch.from_numpy(np.concatenate(outs)).to(x.device)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._run(x, self.prepared.logits_name)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self._run(x, self.prepared.features_name), 1)
