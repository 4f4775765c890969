"""`repairctl demo`: one complete repair through the service, on a small real dataset.

Starts the service on the embedded default in a fresh folder, then does what a model
owner would, through the HTTP API and this client: create an owner, upload the
scikit-learn digits (clean data), train and upload a deployed model (a torchvision
ResNet-18 state dict, named by its registry name, as a real owner would), upload the test
images it gets wrong under Gaussian noise, repair it (smoke profile), follow the
progress, download the repaired model, classify with it, print the report.
"""

from __future__ import annotations

import json
import socket
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from repairctl.client import RepairClient

FAILURE_CORRUPTION = "gaussian_noise"
SEVERITY = 5
SHOWN_IMAGES = 12
# The deployed model: a common architecture, by its torchvision registry name.
DEPLOYED_FAMILY, DEPLOYED_ARCHITECTURE = "torchvision", "resnet18"
# The smoke profile, retraining a small DARTS network for as many epochs as the deployed
# one had (about 20 s on 2 CPU cores).
REPAIR_OVERRIDES = {"train.epochs": 12, "net.init_channels": 8}


def demo_command(
    folder: Annotated[
        Path | None,
        typer.Option(help="Where the demo keeps everything (default: var/demo-<time>)."),
    ] = None,
    budget: Annotated[int, typer.Option(help="Core failure set size B.")] = 30,
    device: Annotated[str, typer.Option(help="Worker device: auto, cpu, cuda, cuda:N.")] = "auto",
) -> None:
    """Run one complete repair through the service on the embedded default."""
    from rich.console import Console

    from api.settings import ArtifactSettings, BrokerSettings, DatabaseSettings, Settings

    console = Console(stderr=True)
    root = (folder or Path("var") / f"demo-{datetime.now():%Y%m%d-%H%M%S}").resolve()
    root.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        database=DatabaseSettings(url=f"sqlite:///{root / 'repair.db'}"),
        broker=BrokerSettings(url="filesystem://", folder=root / "broker"),
        artifacts=ArtifactSettings(root=root / "artifacts"),
        device=device,
    )
    started = time.monotonic()
    try:
        report = _run(console, settings, root, budget)
    except Exception as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
        console.print(f"logs: {root / 'logs'}")
        raise typer.Exit(1) from None
    console.rule("6. Report: original vs repaired")
    typer.echo(report)
    console.print(f"done in {time.monotonic() - started:.0f} s; everything is in {root}")


def _run(console: Console, settings: Any, root: Path, budget: int) -> str:
    from api.db.migrate import upgrade
    from repairctl.client import RepairClient
    from repairctl.commands.admin import new_owner
    from repairctl.service import ServiceProcesses

    console.rule("1. Start the service (SQLite, local artifacts, serverless broker)")
    upgrade(settings.database.url)
    service = ServiceProcesses(settings, host="127.0.0.1", port=_free_port(), log_dir=root / "logs")
    with service:
        service.wait_ready()
        console.print(f"API on {service.url}, one worker; logs in {root / 'logs'}")
        owner = new_owner(settings, f"demo-{int(time.time())}")
        console.print(f"owner {owner.name} created; its API key authenticates every call")
        inputs = _prepare_inputs(console, root / "inputs")
        with RepairClient(service.url, owner.api_key) as client:
            job = _repair(console, client, inputs, budget)
            return _results(console, client, job, inputs, root)


def _prepare_inputs(console: Console, folder: Path) -> dict[str, Path]:
    from safetensors.torch import save_file

    from repair_core.corruptions import corrupt
    from repair_core.datasets.digits import load_digits_splits
    from repair_core.datasets.ingest.npz import write_npz_images, write_npz_splits
    from repair_core.models import InputSpec
    from repair_core.models.store import registry_model
    from repair_core.pipeline.original import dataset_normalization
    from repair_core.train import TrainSettings, train_model

    folder.mkdir(parents=True, exist_ok=True)
    console.rule("2. Inputs: digits, a deployed model, its failures under noise")
    data = load_digits_splits(seed=0)
    write_npz_splits(folder / "digits.npz", data)
    console.print(
        f"scikit-learn digits: {len(data.train)} train / {len(data.test)} test images, 8x8, "
        "10 classes"
    )
    spec = InputSpec(*data.train.image_shape, *dataset_normalization(data.train))
    deployed = registry_model(
        DEPLOYED_FAMILY, DEPLOYED_ARCHITECTURE, spec, data.class_names, seed=0
    )
    with console.status(f"training the deployed model ({DEPLOYED_ARCHITECTURE}) ..."):
        settings = TrainSettings(
            epochs=4, batch_size=64, drop_path_prob=0.0, report_every_steps=0, auxiliary_weight=0.0
        )
        train_model(deployed.model, data.train, settings.scaled_to(8), device="cpu")
    # What an owner has: a plain state dict of the architecture (plus its normalisation).
    net = deployed.model.get_submodule("net")
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    save_file(state, folder / "deployed.safetensors")
    (folder / "deployed.json").write_text(json.dumps(spec.to_dict()))
    noisy = corrupt(data.test.images, FAILURE_CORRUPTION, SEVERITY, seed=1)
    write_npz_images(folder / f"{FAILURE_CORRUPTION}.npz", noisy, data.test.labels)
    console.print(
        f"field images: the {len(noisy)} test images under {FAILURE_CORRUPTION} "
        f"(severity {SEVERITY}); the service keeps the ones the model gets wrong"
    )
    return {
        "dataset": folder / "digits.npz",
        "model": folder / "deployed.safetensors",
        "spec": folder / "deployed.json",
        "failures": folder / f"{FAILURE_CORRUPTION}.npz",
    }


def _repair(
    console: Console, client: RepairClient, inputs: dict[str, Path], budget: int
) -> dict[str, Any]:
    from repairctl.commands._common import transfer_progress
    from repairctl.commands.repairs import follow

    console.rule("3. Upload through the HTTP API")
    with transfer_progress("uploading the dataset") as progress:
        dataset = client.upload_dataset(inputs["dataset"], on_progress=progress)
    console.print(f"dataset {dataset['id']}: {dataset['split_counts']}")
    with transfer_progress("uploading the model") as progress:
        spec = json.loads(inputs["spec"].read_text())
        model = client.upload_model(
            inputs["model"], dataset_id=dataset["id"], family=DEPLOYED_FAMILY,
            architecture=DEPLOYED_ARCHITECTURE, mean=spec["mean"], std=spec["std"],
            on_progress=progress,
        )  # fmt: skip
    console.print(
        f"model {model['id']}: {model['family']} {model['architecture']}, "
        f"{model['num_parameters']:,} parameters, {model['num_flops']:,} FLOPs per image"
    )
    with transfer_progress("uploading the failures") as progress:
        batch = client.upload_failures(model["id"], inputs["failures"], on_progress=progress)
    console.print(f"failure batch {batch['id']}: {batch['accepted']} images")

    console.rule("4. Repair (smoke profile)")
    config = {"profile": "smoke", "budget": budget, "overrides": REPAIR_OVERRIDES}
    job = client.create_repair(model["id"], config=config)
    console.print(f"repair job {job['id']} {job['status']}")
    final = follow(client, job["id"], interval=0.5)
    if final["status"] != "succeeded":
        raise RuntimeError(f"the repair {final['status']}: {final.get('error')}")
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in final["timings"].items())
    console.print(f"succeeded after {final['attempts']} attempt(s); {timings}")
    return final


def _results(
    console: Console,
    client: RepairClient,
    job: dict[str, Any],
    inputs: dict[str, Path],
    root: Path,
) -> str:
    import torch

    from repair_core.checkpoint import load_model, read_state_dict
    from repair_core.datasets.ingest.limits import IngestLimits
    from repair_core.datasets.ingest.npz import read_npz_images
    from repair_core.evaluation.report import EvaluationReport
    from repair_core.models import InputSpec
    from repair_core.models.store import registry_model
    from repairctl.commands._common import transfer_progress

    console.rule("5. Download the repaired model and use it")
    path = root / "repaired.safetensors"
    with transfer_progress("downloading the repaired model") as progress:
        digest = client.download_model(job["id"], path, on_progress=progress)
    console.print(f"{path} (sha256 {digest[:16]}..., checked against the server's ETag)")
    original = registry_model(
        DEPLOYED_FAMILY, DEPLOYED_ARCHITECTURE,
        InputSpec.from_dict(json.loads(inputs["spec"].read_text())),
        [str(i) for i in range(10)], read_state_dict(inputs["model"], "safetensors"),
    )  # fmt: skip
    repaired = load_model(path)
    images, labels = read_npz_images(inputs["failures"], IngestLimits())
    x = images.float() / 255
    with torch.no_grad():
        before, after = original.model(x).argmax(1), repaired.model(x).argmax(1)
    shown = torch.arange(SHOWN_IMAGES)
    console.print(f"noisy test images:  true     {labels[shown].tolist()}")
    console.print(f"                    original {before[shown].tolist()}")
    console.print(f"                    repaired {after[shown].tolist()}")
    report = EvaluationReport.from_dict(client.get_report(job["id"]))
    client.download_report_png(job["id"], root / "report.png")
    console.print(f"figure: {root / 'report.png'}")
    names = list(report.models)
    first, last = report.models[names[0]], report.models[names[-1]]
    console.print(
        f"clean accuracy {first.clean:.1f}% -> {last.clean:.1f}%; held-out failures "
        f"{first.held_out_failures or 0:.1f}% -> {last.held_out_failures or 0:.1f}% "
        "(images the core set did not include; all misclassified before)"
    )
    severity = max(report.severities) if report.severities else None
    return report.to_markdown(severity=severity)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
