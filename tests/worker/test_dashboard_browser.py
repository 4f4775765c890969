"""The dashboard in headless Chromium against real processes (uvicorn, a Celery worker,
Postgres, Redis): log in, upload a dataset, a model and failures, start a smoke repair,
watch it reach 100 %, open the cell graph and the heatmap, download the model, cancel a
second repair; another owner sees nothing of it. Screenshots of the main pages go to a
folder the test prints.

Chromium is the system's (`make browser` installs Debian's package); Playwright drives
it and downloads no browser of its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.db.session import make_engine, make_session_factory
from api.services.owners import create_owner
from api.settings import BrokerSettings, Settings
from repair_core.checkpoint import load_model
from repair_core.datasets.ingest.npz import write_npz_images, write_npz_splits
from tests.digits_problem import RepairProblem
from tests.worker.jobs import TINY, worker_settings_for
from tests.worker.stack import Stack, running_stack

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
# A folder to copy the screenshots to as well (for docs/dashboard.md), when set.
COPY_TO = os.environ.get("DASHBOARD_SCREENSHOTS")
REPAIR_SECONDS = 240.0  # a smoke repair on a loaded 2-core machine, with room to spare
MS = 1000


@pytest.fixture
def stack(worker_postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[Stack]:
    settings: Settings = worker_settings_for(
        worker_postgres_url,
        tmp_path / "artifacts",
        broker=BrokerSettings(url=redis_url),
        report_figures=True,
    )
    with running_stack(settings, tmp_path) as running:
        running.start_worker("ui")
        yield running


def _owner_key(stack: Stack) -> str:
    engine = make_engine(stack.settings.database.url)
    try:
        with make_session_factory(engine)() as session:
            owner = create_owner(
                session, name=f"ui-{uuid.uuid4().hex[:12]}", pepper=stack.settings.auth_pepper
            )
    finally:
        engine.dispose()
    return owner.api_key


def test_an_owner_repairs_a_model_from_the_dashboard_and_another_sees_nothing(
    stack: Stack, digits_problem: RepairProblem, tmp_path: Path
) -> None:
    from playwright.sync_api import Page, expect, sync_playwright

    # Uploads are validated in a sandbox: seconds, more on a loaded machine.
    expect.set_options(timeout=90 * MS)

    assert CHROMIUM.exists(), "no /usr/bin/chromium: run `make browser` (apt-get install chromium)"
    files = tmp_path / "uploads"
    files.mkdir()
    write_npz_splits(files / "digits.npz", digits_problem.data)
    failures = digits_problem.failures
    write_npz_images(files / "gaussian_noise.npz", failures.images, failures.labels)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    print(f"dashboard screenshots: {shots}")
    owner, intruder = _owner_key(stack), _owner_key(stack)

    def login(page: Page, key: str) -> None:
        page.goto(f"{stack.url}/ui/login")
        page.fill("input[name=key]", key)
        page.click("#login button")
        expect(page.locator("h1")).to_have_text("Repair jobs")

    def shot(page: Page, name: str) -> None:
        page.screenshot(path=str(shots / f"{name}.png"), full_page=True)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            page = browser.new_context(accept_downloads=True).new_page()
            page.set_default_timeout(60 * MS)
            login(page, owner)
            shot(page, "01-login-jobs-empty")

            page.goto(f"{stack.url}/ui/datasets")
            page.set_input_files("#upload-dataset input[name=file]", str(files / "digits.npz"))
            page.fill("#upload-dataset input[name=name]", "digits")
            page.click("#upload-dataset button")
            expect(page.locator("#datasets")).to_contain_text("digits")
            shot(page, "02-datasets")

            page.goto(f"{stack.url}/ui/models")
            page.set_input_files("#upload-model input[name=file]", str(digits_problem.checkpoint))
            page.fill("#upload-model input[name=name]", "phi0")
            page.click("#upload-model button")
            expect(page.locator("#models")).to_contain_text("phi0")
            shot(page, "03-models")
            page.click("#models a:has-text('phi0')")

            page.set_input_files(
                "#upload-failures input[name=file]", str(files / "gaussian_noise.npz")
            )
            page.fill("#upload-failures input[name=name]", "noisy")
            page.click("#upload-failures button")
            expect(page.locator("#batches")).to_contain_text("noisy")
            page.select_option("#start-repair select[name=profile]", "smoke")
            page.fill("#start-repair input[name=budget]", "30")
            page.fill("#start-repair input[name=overrides]", json.dumps(TINY))
            shot(page, "04-model-failures-start")
            page.click("#start-repair button")
            page.wait_for_url("**/ui/jobs/*")
            job_id = page.url.rsplit("/", 1)[1]
            # The progress bar follows the event stream; the page reloads once the job ends.
            expect(page.locator("#download-model")).to_be_visible(timeout=REPAIR_SECONDS * MS)
            progress = page.locator(".progress progress")
            assert progress.evaluate("el => el.value") == 100.0
            expect(page.locator(".progress .percent")).to_have_text("100.0 %")
            expect(page.locator(".progress .status")).to_have_text("succeeded")
            expect(page.locator("#timings")).to_contain_text("searching@1")
            expect(page.locator("#report")).to_contain_text("CF-DARTS")

            for figure in ("cell-repaired-normal", "robustness-heatmap"):
                page.click(f"a[href='#figure-{figure}']")
                image = page.locator(f"#figure-{figure} img")
                image.scroll_into_view_if_needed()
                expect(image).to_be_visible()
                page.wait_for_function(
                    "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
                )
            shot(page, "05-job-finished")

            with page.expect_download() as download:
                page.click("#download-model")
            saved = tmp_path / "repaired.safetensors"
            download.value.save_as(saved)
            job = page.request.get(f"{stack.url}/v1/repairs/{job_id}").json()
            assert hashlib.sha256(saved.read_bytes()).hexdigest() == job["result_sha256"]
            assert load_model(saved).genotype.to_dict() == job["genotype"]
            # A second repair, cancelled from its page: the stream shows it end cancelled.
            page.goto(f"{stack.url}/ui/models/{job['model_id']}")
            page.fill("#start-repair input[name=overrides]", json.dumps(TINY))
            page.click("#start-repair button")
            page.wait_for_url("**/ui/jobs/*")
            page.click("#cancel")
            expect(page.locator("[data-result]")).to_contain_text("job is cancel")
            expect(page.locator(".progress .status")).to_have_text("cancelled")
            # The stream's end reloads the page; a goto racing that reload was aborted or
            # overtaken by it. The reloaded page of a finished job has no Cancel button.
            expect(page.locator("#cancel")).to_have_count(0)
            page.goto(f"{stack.url}/ui/")
            expect(page.locator("#jobs")).to_contain_text(job_id[:8])
            shot(page, "06-jobs")

            other = browser.new_context().new_page()
            login(other, intruder)
            answer = other.goto(f"{stack.url}/ui/jobs/{job_id}")
            assert answer is not None and answer.status == 404
            expect(other.locator("#not-found")).to_be_visible()
            html = other.locator("main").inner_html()
            assert "download-model" not in html and "robustness-heatmap" not in html
            assert "CF-DARTS" not in html and "succeeded" not in html and "phi0" not in html
            figure = other.request.get(
                f"{stack.url}/v1/repairs/{job_id}/figures/robustness-heatmap.svg"
            )
            assert figure.status == 404 and b"<svg" not in figure.body()
            expect(other.locator("#jobs")).to_have_count(0)
            other.goto(f"{stack.url}/ui/")
            expect(other.locator("#jobs")).not_to_contain_text(job_id[:8])
            shot(other, "07-other-owner-sees-nothing")
        finally:
            browser.close()
    if COPY_TO:
        Path(COPY_TO).mkdir(parents=True, exist_ok=True)
        for picture in shots.iterdir():
            shutil.copyfile(picture, Path(COPY_TO) / picture.name)
