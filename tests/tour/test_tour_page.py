"""The tour's page in a real browser (headless Chromium), the command, and a failing stage."""

import json
import os
import shutil
import subprocess

import pytest

import cnnkit.tour.convolution
import cnnkit.tour.network
from cnnkit.cli.main import main
from cnnkit.tour import STAGES, parse_stages, run_tour

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    return next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)


@pytest.fixture(scope="session")
def chromium():
    """Debian's chromium: found, else installed with apt-get when running as root, else skip saying why."""
    pytest.importorskip("playwright.sync_api", reason="the Python package playwright drives Chromium: pip install -e '.[test]'")
    if find_chromium() is None and shutil.which("apt-get") and os.geteuid() == 0:
        install = ["apt-get", "install", "-y", "chromium"]
        if subprocess.run(install, capture_output=True, timeout=900).returncode != 0:
            subprocess.run(["apt-get", "update"], capture_output=True, timeout=600)
            subprocess.run(install, capture_output=True, timeout=900)
    path = find_chromium()
    if path is None:
        pytest.skip("headless Chromium not found and could not be installed (Debian: apt-get install chromium, as root)")
    return path


def test_every_stage_heading_and_figure_renders_in_headless_chromium(quick_tour, chromium):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        requested = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(quick_tour.page.resolve().as_uri(), wait_until="load")
        headings = page.locator("section h2").all_inner_texts()
        images = page.evaluate("""Array.from(document.querySelectorAll('section')).map(s => [s.id,
            Array.from(s.querySelectorAll('img')).map(i => i.complete && i.naturalWidth > 0 && i.naturalHeight > 0)])""")
        screenshot = quick_tour.page.parent / "screenshot.png"
        page.screenshot(path=str(screenshot), full_page=True)
        browser.close()
    print(f"screenshot of the quick tour's page: {screenshot}")
    assert requested == [quick_tour.page.resolve().as_uri()], "the page must need nothing but itself"
    loaded = dict(images)
    for section in quick_tour.sections:
        assert any(h.startswith(f"{section.number}. {section.title}") for h in headings), headings
        assert section.figures, f"stage {section.number} has no figure"
        assert loaded[f"stage-{section.number}"] == [True] * len(section.figures), f"stage {section.number}: an image did not load"
    assert screenshot.stat().st_size > 50_000


def test_tour_json_lists_each_stage_for_scripts(quick_tour):
    record = json.loads((quick_tour.page.parent / "tour.json").read_text())
    assert [stage["number"] for stage in record["stages"]] == [section.number for section in quick_tour.sections]
    assert all(stage["status"] == "done" for stage in record["stages"])
    assert record["quick"] is True


def test_a_failing_stage_is_reported_on_the_page_and_the_others_still_run(tmp_path, monkeypatch, capsys):
    def broken(section, context):
        section.say("started")
        raise RuntimeError("the kernel exploded")

    def fine(section, context):
        section.say("a paragraph")

    monkeypatch.setattr(cnnkit.tour.convolution, "run", broken)
    monkeypatch.setattr(cnnkit.tour.network, "run", fine)
    assert main(["tour", "--stages", "1,2", "-o", str(tmp_path), "--format", "json"]) == 1
    record = json.loads(capsys.readouterr().out)
    assert [(s["number"], s["status"]) for s in record["stages"]] == [(1, "failed"), (2, "done")]
    assert record["stages"][0]["error"] == "RuntimeError: the kernel exploded"
    page = (tmp_path / "index.html").read_text()
    assert "This stage failed" in page and "the kernel exploded" in page and "started" in page and "a paragraph" in page


def test_stage_lists_parse_and_bad_ones_are_one_line_errors(capsys):
    assert parse_stages("1,2,4") == [1, 2, 4]
    assert parse_stages("3-5,1") == [1, 3, 4, 5]
    assert main(["tour", "--stages", "9"]) == 2
    assert "there is no stage 9; the stages are 1-8" in capsys.readouterr().err
    assert main(["tour", "--stages", "two"]) == 2
    assert len(STAGES) == 8
    assert main(["tour", "--stages", "1-"]) == 2
    for stages in ([], [0, 1]):
        with pytest.raises(ValueError, match="stages must be some of"):
            run_tour("unused", stages=stages)


def test_an_output_that_is_a_file_is_named(tmp_path, capsys):
    (tmp_path / "tour").write_text("not a folder")
    assert main(["tour", "--stages", "1", "-o", str(tmp_path / "tour")]) == 2
    assert f"{tmp_path / 'tour'}: is a file, expected a folder" in capsys.readouterr().err


def test_a_missing_weights_file_is_refused_before_anything_runs(tmp_path, capsys):
    assert main(["tour", "--stages", "8", "--weights", str(tmp_path / "vgg19.pth"), "-o", str(tmp_path / "t")]) == 2
    assert "no such VGG-19 weights file" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_run_tour_writes_the_page_even_for_one_stage(tmp_path):
    tour = run_tour(tmp_path, stages=[1], quick=True, progress=False)
    assert tour.page.is_file() and not tour.failed
