"""The review page end to end, in a real headless browser (Debian's chromium, driven by Playwright):
a real auto-rotate report, decisions by keyboard, mouse and a folder at once, kept across a reload,
applied losslessly by apply-review, respected by the next auto-rotate, and learnt from.

The photos are the demo archive's (real, openly licensed, turned by known angles) judged by the
shipped model: the tiny test model is certain about everything it sees, so it would flag nothing,
and an operator's page is best judged on real photos. Screenshots at 1280x800 go to
tests/screenshots/ for a person to look at.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
from pathlib import Path

import pytest

from orient_model.archive.audit import displayed_rotation_problem
from orient_model.config import AutorotateConfig
from orient_model.demo import build_demo_archive
from orient_model.report import read_report
from orient_model.review import training_pool

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(__file__).parent / "screenshots"
KEEP = (
    "box-1/astronaut_2.jpg",
    "box-2/astronaut_3.jpg",
    "box-1/astronaut_4.jpg",
    "box-1/camera_2.jpg",
    "box-2/camera_4.jpg",
    "box-2/grace_hopper_2.jpg",
    "box-1/rocket_2_tagged.jpg",
    "box-2/flower_1.jpg",
)
KEYS = {0: "1", 90: "2", 180: "3", 270: "4"}


@pytest.fixture
def page_server(tmp_path):
    """Start the review app with uvicorn in a thread on a free port; yields a starter."""
    import uvicorn

    servers = []

    def start(app) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        started = threading.Event()
        while not server.started and thread.is_alive():
            started.wait(0.02)
        assert server.started, "the review server did not start"
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


def pictures_loaded(page) -> None:
    page.wait_for_selector(".card img")
    page.wait_for_function("Array.from(document.querySelectorAll('.card img')).every(i => i.complete)")


def shot(page, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    pictures_loaded(page)
    page.screenshot(path=str(SHOTS / name))


def current_path(page) -> str:
    return page.inner_text("#path").strip()


def flag_everything(root: Path, state: Path) -> AutorotateConfig:
    """A real run that sends every photo to the operator (the page draws its own evidence)."""
    from flows.autorotate import autorotate

    cfg = AutorotateConfig(model="default", threshold=1.0, apply="none", saliency="off")
    summary = autorotate(str(root), cfg, state_dir=str(state))
    assert summary["counts"]["flag"] == len(KEEP)
    return cfg


@pytest.fixture
def demo_archive(tmp_path) -> tuple[Path, dict[str, int]]:
    """A few of the demo archive's photos (JPEGs, one with an EXIF turn), in two folders."""
    truth = build_demo_archive(tmp_path / "demo")
    root = tmp_path / "demo" / "archive"
    shutil.rmtree(root / "problems")
    for rel in set(truth) - set(KEEP):
        (root / rel).unlink()
    return root, {rel: truth[rel] for rel in KEEP}


def test_operator_reviews_in_the_browser_and_the_decisions_are_applied_and_learnt(
    prefect_server, demo_archive, tmp_path, page_server, browser
):
    from flows.apply_review import apply_review
    from flows.autorotate import autorotate
    from flows.review import create_app

    root, truth = demo_archive
    state = tmp_path / "state"
    (tmp_path / "secret.jpg").write_bytes((root / KEEP[0]).read_bytes())
    originals = {rel: (root / rel).read_bytes() for rel in truth}
    cfg = flag_everything(root, state)
    assert training_pool(root, state) == []

    url = page_server(create_app(root, reviewer="ana", state_dir=state))
    # The page under its own content security policy: it runs and draws with no refusal.
    strict, refused = browser.new_page(viewport={"width": 1280, "height": 800}), []
    strict.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
    strict.goto(url + "/")
    strict.wait_for_selector(".card .prob-bar")
    assert "width" in (strict.get_attribute(".card .prob-bar", "style") or ""), "probability bars not sized"
    strict.close()
    assert not refused, refused
    # The walkthrough's waits are JavaScript the test evaluates in the page: the policy would refuse it.
    page = browser.new_page(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("dialog", lambda dialog: dialog.accept())  # the batch's "accept N suggestions?"
    page.goto(url + "/")
    pictures_loaded(page)
    assert page.inner_text("#progress-text") == f"0 of {len(truth)} reviewed"
    shot(page, "review-1-flagged.png")

    decided = {}
    first = current_path(page)  # the least confident photo comes first; choose with the keyboard
    page.keyboard.press(KEYS[truth[first]])
    page.wait_for_function("p => document.querySelector('#path').innerText.trim() !== p", arg=first)
    decided[first] = truth[first]
    second = current_path(page)  # the page moved on to the next unreviewed one: choose with the mouse
    page.click(f".card[data-rotation='{truth[second]}']")
    page.wait_for_function("p => document.querySelector('#path').innerText.trim() !== p", arg=second)
    decided[second] = truth[second]
    page.keyboard.press("ArrowLeft")  # back to the one just decided: its choice is marked
    page.wait_for_selector(f".card.chosen[data-rotation='{truth[second]}']")
    assert page.inner_text("#progress-text") == f"2 of {len(truth)} reviewed"
    shot(page, "review-2-decided.png")

    page.select_option("#folder", "box-2")  # accept the suggestions for a whole folder at once
    page.wait_for_function(
        "() => [...document.querySelectorAll('#list .name')].every(n => n.innerText.startsWith('box-2/'))"
    )
    open_in_box2 = [p for p in truth if p.startswith("box-2/") and p not in decided]
    page.click("#accept-all")
    page.wait_for_selector("#toast:not([hidden])")
    assert f"Accepted {len(open_in_box2)}" in page.inner_text("#toast")

    page.reload()  # nothing lives in the page: the journal has it all
    pictures_loaded(page)
    listing = page.request.get(url + "/api/state?kind=flagged").json()
    states = {i["path"]: i for i in listing["items"]}
    for rel, turn in decided.items():
        assert (states[rel]["state"], states[rel]["decision_deg"]) == ("decided", turn)
    for rel in open_in_box2:
        assert (states[rel]["state"], states[rel]["decision_deg"]) == (
            "decided",
            states[rel]["suggested_deg"],
        )
        decided[rel] = states[rel]["suggested_deg"]
    box2 = [p for p in truth if p.startswith("box-2/")]
    assert (
        page.inner_text("#progress-text") == f"{len(box2)} of {len(box2)} reviewed"
    )  # still box2 after a reload
    page.select_option("#folder", "")
    page.wait_for_function(f"() => document.querySelectorAll('#list .entry').length === {len(truth)}")
    assert page.locator("#list .entry.decided").count() == len(decided)
    shot(page, "review-3-after-reload.png")

    # The page's server refuses what is not this archive's, and values that are not decisions.
    assert page.request.get(url + "/photo/%2e%2e/secret.jpg").status == 404
    assert page.request.get(url + "/photo/box-1/camera_2.jpg").status == 200
    item = listing["items"][0]["id"]
    assert page.request.post(f"{url}/api/items/{item}/decision", data={"rotation_deg": 45}).status == 422
    assert page.request.post(f"{url}/api/items/nope/decision", data={"rotation_deg": 90}).status == 404

    applied = apply_review(str(root), state_dir=str(state))
    rows = {r["path"]: r for r in read_report(Path(applied["report"])).to_pylist()}
    turned = {rel: turn for rel, turn in decided.items() if turn}
    assert applied["applied"] == len(turned) and applied["counts"]["error"] == 0
    for rel, turn in turned.items():
        assert rows[rel]["method"] in ("lossless", "exif")  # DCT-domain turn, or the EXIF tag for odd sizes
        assert displayed_rotation_problem(originals[rel], (root / rel).read_bytes(), turn) is None
    for rel in set(truth) - set(decided):
        assert (root / rel).read_bytes() == originals[rel]

    later = autorotate(str(root), cfg, state_dir=str(state))  # unchanged photos are carried over, not listed
    assert later["counts"]["flag"] == len(truth) - len(decided)  # reviewed photos are never flagged again
    assert later["counts"]["skip"] == len(decided) and later["applied"] == 0
    listed = read_report(Path(later["report"])).to_pylist()
    assert not {r["path"] for r in listed if r["action"] == "flag"} & set(decided)

    pool = {e.rel_path: e for e in training_pool(root, state)}
    assert set(pool) == set(decided) and all(e.how_known == "operator review" for e in pool.values())

    page.reload()
    pictures_loaded(page)
    page.select_option("#state", "applied")
    page.wait_for_function(
        f"() => document.querySelectorAll('#list .entry.applied').length === {len(turned)}"
    )
    shot(page, "review-4-applied.png")
    assert errors == []


def wait_for_page(page, text: str) -> None:
    page.wait_for_function("t => document.querySelector('#page-text').innerText === t", arg=text)
    pictures_loaded(page)


def test_a_long_queue_is_walked_a_page_at_a_time(
    prefect_server, demo_archive, tmp_path, page_server, browser
):
    """8 flagged photos, 3 a page: the keys walk across pages, the pager turns them, a reload comes
    back to the page holding its photo, and a finished page of unreviewed photos opens the next
    unreviewed ones without skipping any."""
    from flows.review import create_app

    root, _ = demo_archive
    state = tmp_path / "state"
    flag_everything(root, state)
    url = page_server(create_app(root, reviewer="ana", state_dir=state, page_size=3))
    page = browser.new_page(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    order = [i["path"] for i in page.request.get(url + "/api/state?limit=100").json()["items"]]
    page.goto(url + "/")
    wait_for_page(page, "1–3 of 8")
    assert current_path(page) == order[0] and page.locator("#list .entry").count() == 3
    for _ in range(3):
        page.keyboard.press("ArrowDown")
    wait_for_page(page, "4–6 of 8")
    assert current_path(page) == order[3]
    page.keyboard.press("ArrowUp")  # back over the edge: the previous page's last photo
    wait_for_page(page, "1–3 of 8")
    assert current_path(page) == order[2]
    page.click("#page-next")
    wait_for_page(page, "4–6 of 8")
    page.click("#page-next")
    wait_for_page(page, "7–8 of 8")
    assert page.is_disabled("#page-next") and current_path(page) == order[6]
    page.keyboard.press("ArrowDown")
    page.wait_for_function("p => document.querySelector('#path').innerText.trim() === p", arg=order[7])
    page.reload()
    wait_for_page(page, "7–8 of 8")
    assert current_path(page) == order[7]
    shot(page, "review-0-pages.png")

    page.goto(url + "/#kind=flagged&state=unreviewed")
    page.reload()
    wait_for_page(page, "1–3 of 8")
    for n in range(3):  # accept the suggestion for the whole first page, one by one
        page.keyboard.press("Enter")
        if n < 2:
            page.wait_for_function(
                "p => document.querySelector('#path').innerText.trim() === p", arg=order[n + 1]
            )
    wait_for_page(page, "1–3 of 5")  # the three decided left the list; the next three came up
    assert current_path(page) == order[3]
    assert [e.inner_text().split("\n")[0] for e in page.locator("#list .name").all()] == order[3:6]
    assert errors == []
