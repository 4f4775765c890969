"""Checkpoints: exact round trips, and hostile files refused without running anything."""

from __future__ import annotations

import builtins
import json
import os
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from repair_core.checkpoint.format import (
    FORMAT_NAME,
    inspect_checkpoint,
    load_model,
    load_state_dict_checkpoint,
    save_model,
)
from repair_core.errors import RepairInputError, UnsafeCheckpointError
from repair_core.search.genotype import DARTS_V2, PC_DARTS
from repair_core.search.network import EvalNetwork, NetworkConfig

CONFIG = NetworkConfig(
    init_channels=4, layers=4, num_classes=3, in_channels=1, image_size=8,
    auxiliary=True, mean=(0.4,), std=(0.2,),
)  # fmt: skip
NAMES = ("cat", "dog", "emu")


def _trained_like_model() -> EvalNetwork:
    """A model whose BN statistics and weights are not the defaults."""
    model = EvalNetwork(DARTS_V2, CONFIG, generator=torch.Generator().manual_seed(0))
    model.train()
    with torch.no_grad():
        model(torch.rand(8, 1, 8, 8))
    return model.eval()


def test_save_then_load_gives_bit_identical_outputs_and_metadata(tmp_path: Path) -> None:
    model = _trained_like_model()
    path = tmp_path / "model.safetensors"
    save_model(path, model, class_names=NAMES, extra_metadata={"job": "j-1"})
    loaded = load_model(path)
    x = torch.rand(6, 1, 8, 8)
    assert torch.equal(loaded.model(x), model(x))
    assert torch.equal(loaded.model.features(x), model.features(x))
    assert not loaded.model.training
    assert loaded.genotype == DARTS_V2 and loaded.config == CONFIG
    assert loaded.class_names == NAMES and loaded.extra_metadata == {"job": "j-1"}
    for (name, a), b in zip(
        model.state_dict().items(), loaded.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    assert list(tmp_path.iterdir()) == [path]  # no temp file left behind


def test_inspect_reads_the_declaration_without_the_weights(tmp_path: Path) -> None:
    path = tmp_path / "m.safetensors"
    save_model(path, _trained_like_model(), class_names=NAMES)
    info = inspect_checkpoint(path)
    assert info.genotype == DARTS_V2 and info.class_names == NAMES
    assert info.config.mean == (0.4,) and info.format_version == "1"
    assert info.parameter_count > sum(p.numel() for p in _trained_like_model().parameters())


def test_plain_state_dict_loads_bit_identically(tmp_path: Path) -> None:
    model = _trained_like_model()
    x = torch.rand(4, 1, 8, 8)
    for name, obj in (
        ("plain.pt", model.state_dict()),
        ("wrapped.pt", {"state_dict": model.state_dict(), "epoch": 600}),
        ("parallel.pt", {f"module.{k}": v for k, v in model.state_dict().items()}),
    ):
        torch.save(obj, tmp_path / name)
        loaded = load_state_dict_checkpoint(tmp_path / name, DARTS_V2, CONFIG, class_names=NAMES)
        assert torch.equal(loaded.model(x), model(x)), name
        assert loaded.class_names == NAMES


class _RunsCode:
    """Pickles to a call of `func(*args)`: what a hostile checkpoint does."""

    def __init__(self, func: object, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.func, self.args


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("attack", ["os.system", "builtins.exec", "builtins.print", "raw pickle"])
def test_a_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path: Path, attack: str) -> None:
    marker = tmp_path / "pwned"
    payload = {
        "os.system": _RunsCode(os.system, f"touch {marker}"),
        "builtins.exec": _RunsCode(builtins.exec, f"open({str(marker)!r}, 'w').close()"),
        "builtins.print": _RunsCode(builtins.print, "hello"),
        "raw pickle": _RunsCode(os.system, f"touch {marker}"),
    }[attack]
    path = tmp_path / "evil.pt"
    if attack == "raw pickle":
        import pickle

        path.write_bytes(pickle.dumps(payload))
    else:
        torch.save({"stem.0.weight": torch.zeros(1), "x": payload}, path)
    with pytest.raises(UnsafeCheckpointError, match=r"Nothing was executed|refused") as info:
        load_state_dict_checkpoint(path, DARTS_V2, CONFIG)
    assert not marker.exists()
    if attack != "builtins.print":
        assert "run code" in str(info.value)


def test_a_pickled_full_model_is_refused_with_a_hint(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    torch.save(_trained_like_model(), path)
    with pytest.raises(UnsafeCheckpointError, match="upload a state_dict or safetensors"):
        load_state_dict_checkpoint(path, DARTS_V2, CONFIG)


def test_weights_for_another_architecture_are_listed(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save(EvalNetwork(PC_DARTS, CONFIG).state_dict(), path)
    with pytest.raises(RepairInputError, match="do not match the declared architecture") as info:
        load_state_dict_checkpoint(path, DARTS_V2, CONFIG)
    assert "missing" in str(info.value) or "shape" in str(info.value)


def test_non_finite_weights_are_refused(tmp_path: Path) -> None:
    state = _trained_like_model().state_dict()
    state["classifier.weight"][0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pt")
    with pytest.raises(RepairInputError, match=r"NaN or Inf in \['classifier\.weight'\]"):
        load_state_dict_checkpoint(tmp_path / "nan.pt", DARTS_V2, CONFIG)


def test_files_that_are_not_checkpoints_are_input_errors(tmp_path: Path) -> None:
    (tmp_path / "html.pt").write_text("<html>not a model</html>")
    (tmp_path / "list.pt").write_bytes(b"")
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    for name in ("html.pt", "list.pt", "absent.pt"):
        with pytest.raises(RepairInputError):
            load_state_dict_checkpoint(tmp_path / name, DARTS_V2, CONFIG)


def _raw_safetensors(header: dict[str, object], data: bytes, declared: int | None = None) -> bytes:
    blob = json.dumps(header).encode()
    return struct.pack("<Q", len(blob) if declared is None else declared) + blob + data


def _valid_file(tmp_path: Path) -> Path:
    path = tmp_path / "ok.safetensors"
    save_model(path, _trained_like_model(), class_names=NAMES)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda good: good[:-10], "outside|truncated"),
        (lambda good: struct.pack("<Q", len(good) * 2) + good[8:], "header length"),
        (lambda good: struct.pack("<Q", 200 * 1024 * 1024) + good[8:], "header length"),
        (lambda good: good[:5], "too short"),
        (lambda good: struct.pack("<Q", 4) + b"\xff\xfe{}" + good[12:], "not JSON"),
        (
            lambda good: _raw_safetensors(
                {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                 "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}},
                b"\0" * 12,
            ),
            "overlapping",
        ),
        (
            lambda good: _raw_safetensors(
                {"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}, b"\0" * 8
            ),
            "needs 16 bytes",
        ),
        (
            lambda good: _raw_safetensors(
                {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 400]}}, b"\0" * 4
            ),
            "outside",
        ),
        (
            lambda good: _raw_safetensors(
                {"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
                 "__metadata__": {"format": "something-else"}},
                b"\0",
            ),
            "not a repair-core-checkpoint",
        ),
    ],
)  # fmt: skip
def test_malformed_safetensors_are_input_errors(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    good = _valid_file(tmp_path).read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(make(good))
    with pytest.raises(RepairInputError, match=message):
        load_model(bad)


def test_duplicate_header_keys_are_refused(tmp_path: Path) -> None:
    entry = '{"dtype":"U8","shape":[1],"data_offsets":[0,1]}'
    blob = ('{"a":' + entry + ',"a":' + entry + "}").encode()
    path = tmp_path / "dup.safetensors"
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"\0")
    with pytest.raises(RepairInputError, match="repeats keys"):
        inspect_checkpoint(path)


def test_metadata_that_lies_about_the_architecture_is_refused(tmp_path: Path) -> None:
    model = _trained_like_model()
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    meta = {
        "format": FORMAT_NAME,
        "format_version": "1",
        "genotype": PC_DARTS.to_json(),
        "network_config": CONFIG.to_json(),
        "class_names": json.dumps(list(NAMES)),
        "normalization": "{}",
    }
    save_file(tensors, str(tmp_path / "lie.safetensors"), metadata=meta)
    with pytest.raises(RepairInputError, match="declared architecture"):
        load_model(tmp_path / "lie.safetensors")
    meta["class_names"] = json.dumps(["one"])
    save_file(tensors, str(tmp_path / "names.safetensors"), metadata=meta)
    with pytest.raises(RepairInputError, match="1 class names"):
        load_model(tmp_path / "names.safetensors")


def test_save_rejects_wrong_class_names_and_reserved_metadata(tmp_path: Path) -> None:
    model = _trained_like_model()
    with pytest.raises(RepairInputError, match="2 class names"):
        save_model(tmp_path / "a.safetensors", model, class_names=("a", "b"))
    with pytest.raises(RepairInputError, match="extra_metadata"):
        save_model(
            tmp_path / "a.safetensors", model, class_names=NAMES, extra_metadata={"genotype": "x"}
        )
    assert not list(tmp_path.iterdir())
