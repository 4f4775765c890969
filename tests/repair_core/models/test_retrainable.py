"""What the Control row and the baselines retrain, per deployed-model family."""

from __future__ import annotations

from pathlib import Path

from repair_core.models import load_deployed
from repair_core.models.onnx_net import OnnxNet, prepare_onnx
from repair_core.models.retrainable import deployed_architecture
from repair_core.models.spec import DeployedModel, InputSpec
from repair_core.models.store import registry_model
from repair_core.pipeline import RepairConfig, repair
from repair_core.search.genotype import DARTS_V2
from tests.digits_problem import RepairProblem
from tests.onnx_graphs import tiny_onnx


def test_an_onnx_model_has_no_trainable_architecture_and_falls_back_to_darts_v2() -> None:
    spec = InputSpec(1, 8, 8)
    net = OnnxNet(prepare_onnx(tiny_onnx(1, 10).to_bytes()), spec)
    deployed = DeployedModel(net, "onnx", "", spec, 10, tuple(str(i) for i in range(10)))
    own = deployed_architecture(deployed)
    assert (own.genotype, own.build) == (DARTS_V2, None)
    assert own.fallback is not None and "DARTS_V2" in own.fallback


def test_the_control_of_a_timm_model_retrains_that_architecture_from_fresh_weights(
    digits_problem: RepairProblem, tmp_path: Path
) -> None:
    data = digits_problem.data
    deployed = registry_model(
        "timm", "mobilenetv3_small_050", InputSpec(1, 8, 8, (0.3,), (0.4,)), data.class_names,
        seed=0,
    )  # fmt: skip
    config = RepairConfig(
        profile="smoke", baseline="control", iterations=1,
        overrides={"evaluation.corruptions": "fog", "evaluation.severities": "1,5",
                   "evaluation.max_images": 40, "train.epochs": 1},
    )  # fmt: skip
    result = repair(
        deployed, data, digits_problem.failures, config, work_dir=tmp_path, device="cpu"
    )
    control = load_deployed(result.variant_checkpoints["Control"])
    assert (control.family, control.architecture) == ("timm", "mobilenetv3_small_050")
    assert control.spec == deployed.spec
    retrained = control.model.state_dict()
    fresh = deployed.model.state_dict()
    assert any(not (retrained[k] == v).all() for k, v in fresh.items() if v.is_floating_point())
    assert result.genotype is None and result.report.info["variants"]["Control"]["genotypes"] == [
        None
    ]
    assert set(result.report.models) == {"original", "Control"}
