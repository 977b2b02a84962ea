"""The operator review: the queue, decisions in the journal, the HTTP API's refusals, pictures,
apply-review and what later runs make of reviewed photos. Real files, real runs, real journal.

Runs here are driven with chosen probabilities (the run protocol is real, the judgements are
ours), so the queue's order and states are known; the pictures use a real trained model.
"""

from __future__ import annotations

import io
import json
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from chosen_runs import decided_run
from fastapi.testclient import TestClient
from PIL import Image

from orient_model import orientation as ori
from orient_model.archive.audit import displayed_rotation_problem
from orient_model.archive.state import open_journals, remember, state_folders
from orient_model.config import AutorotateConfig
from orient_model.errors import OrientError
from orient_model.files import sha256_file
from orient_model.model.predict import Decision
from orient_model.report import read_report
from orient_model.review import (
    ContentChanged,
    InvalidDecision,
    Pictures,
    ReviewQueue,
    UnknownItem,
    select,
    training_pool,
)
from orient_model.run import AutorotateRun
from orient_model.synthetic import scene

# path -> (clockwise turn that makes it upright, the probabilities the "model" gives)
PHOTOS = {
    "box1/a.jpg": (90, (0.10, 0.50, 0.20, 0.20)),
    "box1/b.jpg": (180, (0.20, 0.10, 0.40, 0.30)),
    "box2/c.jpg": (0, (0.35, 0.30, 0.20, 0.15)),
    "box2/d.jpg": (270, (0.10, 0.10, 0.20, 0.60)),
    "top.jpg": (0, (0.97, 0.01, 0.01, 0.01)),
    "turned.jpg": (270, (0.02, 0.95, 0.02, 0.01)),  # the "model" is confidently wrong: 90
}


def make_archive(root: Path, photos: dict = PHOTOS, seed: int = 5) -> Path:
    rng = np.random.default_rng(seed)
    for rel, (needs, _) in photos.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        ori.apply(scene(rng, 320, 240), ori.COUNTER_CLOCKWISE[needs]).save(path, "JPEG", quality=90)
    return root


def judged_run(
    root: Path,
    state: Path,
    apply: str = "none",
    model: str | None = None,
    probs: dict | None = None,
    threshold: float = 0.9,
) -> AutorotateRun:
    """A real run over ``root`` whose judgements are ``probs`` (path -> four probabilities)."""
    probs = probs or {rel: p for rel, (_, p) in PHOTOS.items()}
    cfg = AutorotateConfig(apply=apply, model=model or "none")
    version = json.loads((Path(model) / "card.json").read_text())["version"] if model else "test-model"
    return decided_run(
        root,
        cfg,
        lambda rel: Decision.of(probs[rel], threshold) if rel in probs else None,
        version,
        "test-view",
        threshold=threshold,
        state_dir=state,
    )


@pytest.fixture
def archive(tmp_path: Path) -> tuple[Path, Path]:
    """An archive judged once by a report-only run (state outside the archive)."""
    root, state = make_archive(tmp_path / "archive"), tmp_path / "state"
    judged_run(root, state)
    return root, state


def by_path(items) -> dict:
    return {i.path: i for i in items}


def reviews_in(state_folder: Path) -> list[tuple]:
    conn = sqlite3.connect(state_folder / "journal.sqlite")
    try:
        return conn.execute(
            "SELECT sha256, rel_path, rotation_deg, reviewer, run_id FROM reviews ORDER BY id"
        ).fetchall()
    finally:
        conn.close()


# ------------------------------------------------------------------------------------ the queue


def test_queue_lists_flagged_least_confident_first_and_automatic_decisions_for_audit(archive):
    root, state = archive
    items = ReviewQueue(root, state).items()
    assert [i.path for i in select(items, "flagged")] == [
        "box2/c.jpg",
        "box1/b.jpg",
        "box1/a.jpg",
        "box2/d.jpg",
    ]
    assert [(i.path, i.action) for i in select(items, "automatic")] == [
        ("turned.jpg", "rotate"),
        ("top.jpg", "keep"),
    ]
    a = by_path(items)["box1/a.jpg"]
    assert (a.suggested_deg, a.confidence, a.state, a.folder) == (
        90,
        pytest.approx(0.5),
        "unreviewed",
        "box1",
    )
    assert a.sha256 == a.current_sha256 == sha256_file(root / "box1/a.jpg")
    assert [i.id for i in ReviewQueue(root, state).items()] == [i.id for i in items]  # stable ids
    assert [i.path for i in select(items, "all", folder="box1", min_confidence=0.45)] == ["box1/a.jpg"]

    (root / "box1/b.jpg").write_bytes(
        (root / "box2/c.jpg").read_bytes()
    )  # re-scanned: stale until judged again
    assert "box1/b.jpg" not in by_path(ReviewQueue(root, state).items())


def test_decisions_are_journaled_at_once_and_later_runs_leave_the_photos_alone(archive):
    root, state = archive
    queue = ReviewQueue(root, state)
    items = by_path(queue.items())
    a = queue.decide(items["box1/a.jpg"].id, 90, "ana")
    queue.decide(items["box2/c.jpg"].id, 0, "ana")
    assert (a.state, a.decision_deg, a.reviewer) == ("decided", 90, "ana")
    assert not (root / ".orient").exists()  # a report-only archive stays untouched: decisions go to its state
    first_run = items["box1/a.jpg"].run_id
    assert reviews_in(state)[0] == (a.sha256, b"box1/a.jpg", 90, "ana", first_run)

    again = by_path(ReviewQueue(root, state).items())  # another tab, or a restarted server
    assert (again["box1/a.jpg"].state, again["box2/c.jpg"].decision_deg) == ("decided", 0)

    later = judged_run(root, state, probs={rel: (0.25, 0.25, 0.25, 0.25) for rel in PHOTOS})
    rows = {r["path"]: r for r in read_report(later.report_path).to_pylist()}
    assert rows["box1/a.jpg"]["action"] == "skip" and "apply-review" in rows["box1/a.jpg"]["note"]
    assert rows["box2/c.jpg"]["action"] == "skip" and "confirmed upright by ana" in rows["box2/c.jpg"]["note"]
    assert rows["box1/b.jpg"]["action"] == "flag"
    still = by_path(ReviewQueue(root, state).items())
    assert still["box1/a.jpg"].state == "decided" and still["box1/b.jpg"].run_id == later.run_id

    folders = state_folders(root, False, state)
    journal, others = open_journals(folders, create_primary=False)
    memory = remember([journal, *others])
    assert memory.leave_alone(a.sha256).startswith("reviewed by ana")
    for j in [journal, *others]:
        j.close()

    pool = {e.rel_path: e for e in training_pool(root, state)}
    assert set(pool) == {"box1/a.jpg", "box2/c.jpg"}
    assert pool["box1/a.jpg"].rotation_deg == 90 and pool["box1/a.jpg"].how_known == "operator review"
    assert (
        pool["box1/a.jpg"].path == str(root.resolve() / "box1/a.jpg") and pool["box1/a.jpg"].reviewer == "ana"
    )


def test_bad_decisions_change_nothing(archive):
    root, state = archive
    queue = ReviewQueue(root, state)
    item = queue.items()[0]
    with pytest.raises(InvalidDecision):
        queue.decide(item.id, 45, "ana")
    with pytest.raises(InvalidDecision):
        queue.decide(item.id, 90, "  ")
    with pytest.raises(UnknownItem):
        queue.decide("0" * 20, 90, "ana")
    with pytest.raises(UnknownItem):  # a batch is checked whole before anything is written
        queue.decide_many([item.id, "nope"], [90, 90], "ana")
    assert not (state / "journal.sqlite").exists() or reviews_in(state) == []


def test_a_batch_of_decisions_is_written_whole_or_not_at_all(archive):
    root, state = archive
    queue = ReviewQueue(root, state)
    items = queue.items()[:3]
    queue.decision_journal().close()
    # The journal refuses the batch's second row, as a full disk or an I/O error would.
    conn = sqlite3.connect(state / "journal.sqlite")
    conn.execute(
        "CREATE TRIGGER second_row_fails BEFORE INSERT ON reviews WHEN (SELECT COUNT(*) FROM reviews) >= 1"
        " BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END"
    )
    conn.commit()
    with pytest.raises(OrientError):
        queue.accept_suggestions(items, "ana")
    assert reviews_in(state) == []
    assert {i.state for i in ReviewQueue(root, state).items()} == {"unreviewed"}
    conn.execute("DROP TRIGGER second_row_fails")
    conn.commit()
    conn.close()
    assert len(queue.accept_suggestions(items, "ana")) == 3 and len(reviews_in(state)) == 3


def test_decisions_go_into_the_archive_when_it_keeps_its_own_state(tmp_path):
    root, state = make_archive(tmp_path / "archive"), tmp_path / "state"
    judged_run(root, state, apply="lossless")  # turns turned.jpg: the archive now has .orient
    queue = ReviewQueue(root, state)
    queue.decide(by_path(queue.items())["box1/a.jpg"].id, 90, "ana")
    assert len(reviews_in(root / ".orient")) == 1 and not (state / "journal.sqlite").exists()


# ------------------------------------------------------------------------------------ the HTTP API


@pytest.fixture
def client(archive):
    from flows.review import create_app

    root, state = archive
    outside = root.parent / "secret.jpg"
    outside.write_bytes((root / "top.jpg").read_bytes())
    os.symlink(outside, root / "link.jpg")
    (root.parent / "elsewhere").mkdir()
    (root.parent / "elsewhere" / "x.jpg").write_bytes(outside.read_bytes())
    os.symlink(root.parent / "elsewhere", root / "linkdir")
    app = create_app(root, reviewer="ana", state_dir=state, allowed_hosts=["testserver"])
    return TestClient(app), root, state


def test_api_lists_decides_and_accepts_a_folder(client):
    http, root, state = client
    page = http.get("/")
    assert page.status_code == 200 and "orient" in page.text
    listing = http.get("/api/state", params={"kind": "flagged"}).json()
    assert [i["path"] for i in listing["items"]] == ["box2/c.jpg", "box1/b.jpg", "box1/a.jpg", "box2/d.jpg"]
    assert listing["progress"] == {"reviewed": 0, "total": 4, "applied": 0}
    ids = {i["path"]: i["id"] for i in listing["items"]}

    decided = http.post(f"/api/items/{ids['box1/b.jpg']}/decision", json={"rotation_deg": 180})
    assert decided.status_code == 200 and decided.json()["state"] == "decided"
    accepted = http.post("/api/accept", json={"kind": "flagged", "folder": "box2"}).json()
    assert accepted["accepted"] == 2 and {i["decision_deg"] for i in accepted["items"]} == {0, 270}
    again = http.get("/api/state", params={"kind": "flagged", "state": "unreviewed"}).json()
    assert [i["path"] for i in again["items"]] == ["box1/a.jpg"] and again["progress"]["reviewed"] == 3
    high = http.post("/api/accept", json={"kind": "rotate", "min_confidence": 0.9}).json()
    assert [i["path"] for i in high["items"]] == ["turned.jpg"]

    picture = http.get(f"/api/items/{ids['box1/a.jpg']}/candidate/90.jpg")
    assert picture.headers["content-type"] == "image/jpeg"
    assert Image.open(io.BytesIO(picture.content)).size == (320, 240)  # stored portrait, upright turned 90
    assert http.get(f"/api/items/{ids['box1/a.jpg']}/evidence/90.jpg").status_code == 404  # no model recorded
    full = http.get("/photo/box1/a.jpg")
    assert full.status_code == 200 and Image.open(io.BytesIO(full.content)).format == "JPEG"


def test_api_lists_a_page_at_a_time_and_the_page_holding_a_photo(client):
    from flows.review import MAX_PAGE

    http, _, _ = client
    whole = [i["id"] for i in http.get("/api/state").json()["items"]]
    assert len(whole) == 4
    first = http.get("/api/state", params={"limit": 3}).json()
    assert ([i["id"] for i in first["items"]], first["offset"], first["matching"]) == (whole[:3], 0, 4)
    assert first["progress"]["total"] == 4  # counts are the whole queue's, not the page's
    rest = http.get("/api/state", params={"limit": 3, "offset": 3}).json()
    assert [i["id"] for i in rest["items"]] == whole[3:]
    around = http.get("/api/state", params={"limit": 3, "around": whole[3]}).json()
    assert (around["offset"], [i["id"] for i in around["items"]]) == (3, whole[3:])
    gone = http.get("/api/state", params={"limit": 3, "around": "0" * 20}).json()
    assert gone["offset"] == 0
    for bad in ({"limit": 0}, {"limit": MAX_PAGE + 1}, {"offset": -1}):
        assert http.get("/api/state", params=bad).status_code == 422


@pytest.mark.parametrize(
    "url",
    [
        "/photo/%2e%2e/secret.jpg",
        "/photo/box1/%2e%2e/%2e%2e/secret.jpg",
        "/photo//etc/passwd",
        "/photo/%2Fetc%2Fpasswd",
        "/photo/link.jpg",
        "/photo/linkdir/x.jpg",
        "/photo/.orient/journal.sqlite",
        "/photo/nothere.jpg",
        "/static/%2e%2e/__init__.py",
        "/static/..%2f..%2f..%2fpyproject.toml",
        "/api/items/0123456789abcdef0123/candidate/0.jpg",
        "/api/items/../../etc/candidate/0.jpg",
    ],
)
def test_api_serves_nothing_outside_the_archive(client, url):
    http, _, _ = client
    response = http.get(url)
    assert response.status_code == 404, response.text
    assert b"root:" not in response.content


def test_api_refuses_bad_payloads_and_changes_nothing(client):
    http, root, state = client
    item = http.get("/api/state").json()["items"][0]["id"]
    url = f"/api/items/{item}/decision"
    assert http.post(url, json={"rotation_deg": 45}).status_code == 422
    assert http.post(url, json={"rotation_deg": "90"}).status_code == 422
    assert http.post(url, json={"rotation_deg": 90.0}).status_code == 422
    assert http.post(url, json={"rotation_deg": 90, "reviewer": "mallory"}).status_code == 422
    assert http.post(url, json={}).status_code == 422
    assert http.post(url, json=[90]).status_code == 422
    assert (
        http.post(
            url, content=b"rotation_deg=90", headers={"Content-Type": "application/x-www-form-urlencoded"}
        ).status_code
        == 415
    )
    assert (
        http.post(url, content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 422
    )
    assert http.post("/api/items/0123456789abcdef0123/decision", json={"rotation_deg": 90}).status_code == 404
    assert (
        http.post(url, json={"rotation_deg": 90}, headers={"Origin": "http://evil.example"}).status_code
        == 403
    )
    assert http.post(url, json={"rotation_deg": 90}, headers={"Host": "evil.example"}).status_code == 400
    assert http.post("/api/accept", json={"min_confidence": 7}).status_code == 422
    assert http.post("/api/accept", json={"kind": "everything"}).status_code == 422
    assert http.get("/api/state", params={"kind": "everything"}).status_code == 422
    assert http.get(f"/api/items/{item}/candidate/45.jpg").status_code == 404
    assert not (state / "journal.sqlite").exists() or reviews_in(state) == []


def test_api_answers_nonfinite_numbers_with_one_line_422(client):
    http, root, state = client
    item = http.get("/api/state").json()["items"][0]["id"]
    hdr = {"Content-Type": "application/json"}
    for body in (b'{"rotation_deg": 1e400}', b'{"rotation_deg": NaN}', b'{"rotation_deg": -Infinity}'):
        answer = http.post(f"/api/items/{item}/decision", content=body, headers=hdr)
        assert answer.status_code == 422, body
        detail = answer.json()["detail"]
        assert isinstance(detail, str) and "\n" not in detail and "Traceback" not in detail
    for body in (b'{"min_confidence": NaN}', b'{"max_confidence": 1e400}', b'{"ids": [NaN]}'):
        answer = http.post("/api/accept", content=body, headers=hdr)
        assert answer.status_code == 422, body
        assert isinstance(answer.json()["detail"], str)
    assert not (state / "journal.sqlite").exists() or reviews_in(state) == []


def test_page_cannot_be_framed_nor_its_photos_loaded_by_other_sites(client):
    http, root, state = client
    page = http.get("/")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    item = http.get("/api/state").json()["items"][0]
    picture = f"/api/items/{item['id']}/candidate/0.jpg"
    photo = f"/photo/{item['path']}"
    for url in (picture, photo):
        assert http.get(url, headers={"Sec-Fetch-Site": "same-origin"}).status_code == 200
        assert http.get(url, headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403
        assert http.get(url, headers={"Sec-Fetch-Site": "same-site"}).status_code == 403
    decision = f"/api/items/{item['id']}/decision"
    cross = http.post(decision, json={"rotation_deg": 90}, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross.status_code == 403


def test_a_huge_request_body_is_refused_unread(client):
    http, root, state = client
    item = http.get("/api/state").json()["items"][0]["id"]
    body = b'{"rotation_deg": 90, "pad": "' + b"x" * (2 << 20) + b'"}'
    answer = http.post(
        f"/api/items/{item}/decision", content=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 413 and len(answer.content) < 200
    assert not (state / "journal.sqlite").exists() or reviews_in(state) == []


def test_the_port_of_a_page_just_closed_can_be_used_again():
    """After Ctrl+C the port is left in TIME_WAIT for a minute; that must not block a restart."""
    import socket

    from flows.review import check_port_free

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    browser = socket.create_connection(("127.0.0.1", port))
    served, _ = server.accept()
    served.close()  # the server closes first, as uvicorn does on shutdown: its side waits in TIME_WAIT
    browser.recv(1)
    browser.close()
    server.close()
    check_port_free("127.0.0.1", port)


# ------------------------------------------------------------------------------------ pictures


def test_pictures_show_the_four_turns_with_evidence_for_each(tmp_path, tiny_model):
    root, state = make_archive(tmp_path / "archive"), tmp_path / "state"
    judged_run(root, state, model=str(tiny_model))
    item = by_path(ReviewQueue(root, state).items())["box1/a.jpg"]
    pictures = Pictures(root).of(item)
    sizes = [Image.open(io.BytesIO(p)).size for p in pictures.candidates]
    assert sizes == [(240, 320), (320, 240), (240, 320), (320, 240)]  # a.jpg is stored on its side
    shown = [np.asarray(Image.open(io.BytesIO(p)).convert("L"), np.float32) for p in pictures.candidates]
    assert np.abs(np.rot90(shown[0], -2) - shown[2]).mean() < 3  # 180 is the first turned twice
    assert pictures.evidence is not None and pictures.note is None
    evidence = [np.asarray(Image.open(io.BytesIO(p)).convert("L"), np.float32) for p in pictures.evidence]
    assert [e.shape for e in evidence] == [s.shape for s in shown]
    # Grad-CAM differs from class to class (turned back to compare the same pixels).
    back = [np.rot90(e, k) for k, e in enumerate(evidence)]
    assert max(np.abs(back[0] - b).mean() for b in back[1:]) > 1.0
    (root / "box1/a.jpg").write_bytes((root / "top.jpg").read_bytes())
    with pytest.raises(ContentChanged):
        Pictures(root).of(item)


# ------------------------------------------------------------------------------------ apply-review (flows)


def test_apply_review_turns_losslessly_once_and_autorotate_leaves_reviewed_photos_alone(
    prefect_server, tiny_model, archive
):
    from flows.apply_review import apply_review
    from flows.autorotate import autorotate
    from orient_model.archive.undo import undo_run

    root, state = archive
    originals = {rel: (root / rel).read_bytes() for rel in PHOTOS}
    queue = ReviewQueue(root, state)
    items = by_path(queue.items())
    queue.decide(items["box1/a.jpg"].id, 90, "ana")
    queue.decide(items["box1/b.jpg"].id, 180, "ana")
    queue.decide(items["box2/c.jpg"].id, 0, "ana")

    summary = apply_review(str(root), state_dir=str(state))
    assert summary["applied"] == 2 and summary["counts"]["error"] == 0
    rows = {r["path"]: r for r in read_report(Path(summary["report"])).to_pylist()}
    for rel in ("box1/a.jpg", "box1/b.jpg"):
        assert rows[rel]["applied"] and rows[rel]["method"] == "lossless", rows[rel]
        assert displayed_rotation_problem(originals[rel], (root / rel).read_bytes(), PHOTOS[rel][0]) is None
    assert set(rows) == {"box1/a.jpg", "box1/b.jpg"}  # only files with a pending turn are read
    after = by_path(ReviewQueue(root, state).items())
    assert (after["box1/a.jpg"].state, after["box2/c.jpg"].state, after["box2/d.jpg"].state) == (
        "applied",
        "decided",
        "unreviewed",
    )

    again = apply_review(str(root), state_dir=str(state))  # never twice
    assert again["applied"] == 0 and again["files"] == 0
    assert displayed_rotation_problem(originals["box1/a.jpg"], (root / "box1/a.jpg").read_bytes(), 90) is None

    cfg = AutorotateConfig(model=str(tiny_model), threshold=1.0, apply="lossless", saliency="off")
    later = {
        r["path"]: r
        for r in read_report(Path(autorotate(str(root), cfg, state_dir=str(state))["report"])).to_pylist()
    }
    for rel in ("box1/a.jpg", "box1/b.jpg", "box2/c.jpg"):  # reviewed: neither flagged nor turned again
        assert later[rel]["action"] == "skip" and not later[rel]["applied"], later[rel]
    assert later["box2/d.jpg"]["action"] in ("flag", "rotate")  # not reviewed: judged as usual

    pool = {e.rel_path: e for e in training_pool(root, state)}
    assert {k: (e.rotation_deg, e.sha256) for k, e in pool.items()} == {
        "box1/a.jpg": (0, sha256_file(root / "box1/a.jpg")),
        "box1/b.jpg": (0, sha256_file(root / "box1/b.jpg")),
        "box2/c.jpg": (0, sha256_file(root / "box2/c.jpg")),
    }

    undo_run(summary["report"], announce=lambda line: None)  # undoable like any run
    assert (root / "box1/a.jpg").read_bytes() == originals["box1/a.jpg"]
    assert apply_review(str(root), state_dir=str(state))["applied"] == 0  # an undone turn is not redone


def test_an_automatic_turn_overturned_in_review_is_applied_from_the_original(prefect_server, tmp_path):
    from flows.apply_review import apply_review

    root, state = make_archive(tmp_path / "archive"), tmp_path / "state"
    original = (root / "turned.jpg").read_bytes()
    judged_run(root, state, apply="lossless")  # turns turned.jpg 90 degrees: wrongly, it needed 270
    assert displayed_rotation_problem(original, (root / "turned.jpg").read_bytes(), 90) is None
    queue = ReviewQueue(root, state)
    items = by_path(queue.items())
    turned, kept = items["turned.jpg"], items["top.jpg"]
    assert turned.applied_by_run and turned.suggested_deg == 0 and turned.probs[0] == pytest.approx(0.95)
    queue.decide(turned.id, 180, "ana")  # as it is now, it is upside down
    queue.decide(kept.id, 90, "ana")  # and the automatic 'keep' was wrong too

    summary = apply_review(str(root), state_dir=str(state))
    rows = {r["path"]: r for r in read_report(Path(summary["report"])).to_pylist()}
    assert rows["turned.jpg"]["rotation_deg"] == 270 and "put back the original" in rows["turned.jpg"]["note"]
    assert displayed_rotation_problem(original, (root / "turned.jpg").read_bytes(), 270) is None
    assert rows["top.jpg"]["applied"] and rows["top.jpg"]["method"] == "lossless"
    after = by_path(ReviewQueue(root, state).items())
    assert after["turned.jpg"].state == after["top.jpg"].state == "applied"
