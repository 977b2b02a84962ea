"""The review page: a small local web app over one archive's review queue.

``orient review ARCHIVE`` serves it with uvicorn on 127.0.0.1. Everything it knows comes from
:mod:`orient_model.review` (the queue, decisions, pictures); this module only maps HTTP onto it
and guards the door: only this archive's photos are ever served (by item id, or by a path
walked through the archive's containment layer, so ``..``, absolute paths and links out of it
are 404), requests must name this server as their host (no DNS rebinding), and writes must be
JSON from this page's own origin (no cross-site form posts).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator
from starlette.middleware.trustedhost import TrustedHostMiddleware

from orient_model import orientation
from orient_model.archive import OutsideArchive, reports_dir
from orient_model.errors import OrientError
from orient_model.imageio import ImageReadError
from orient_model.review import (
    KINDS,
    ContentChanged,
    InvalidDecision,
    Pictures,
    ReviewError,
    ReviewItem,
    ReviewQueue,
    UnknownItem,
    default_reviewer,
    full_view,
    progress,
    select,
)

STATIC = Path(__file__).parent / "static"
DEFAULT_PORT = 8765
LOOPBACK = ("127.0.0.1", "localhost", "::1")
PAGE, MAX_PAGE = 200, 5000  # items a listing holds: a page stays quick with any size of queue
_NO_STORE = {"Cache-Control": "no-store"}
_PICTURE_CACHE = {"Cache-Control": "private, max-age=300"}  # the URL names the content (see app.js)
MAX_BODY = 1 << 20  # bytes a request body may hold: the largest real one (accept by ids) is far below
# No other site may frame the page, and it runs only its own script and style.
_PAGE_GUARDS = {
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# Photos and pictures are for this page only: a browser says where a request comes from.
_FROM_THIS_PAGE = ("same-origin", "none")


class Decision(BaseModel):
    """The upright view: a clockwise turn of exactly 0, 90, 180 or 270 (an integer)."""

    model_config = ConfigDict(extra="forbid", strict=True)
    rotation_deg: StrictInt

    @field_validator("rotation_deg")
    @classmethod
    def quarter_turn(cls, value: int) -> int:
        if value not in orientation.ROTATIONS:
            raise ValueError("a decision is a clockwise turn of 0, 90, 180 or 270 degrees")
        return value


class Selection(BaseModel):
    """Which unreviewed items to accept the suggestion for: the page's current filters."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["flagged", "automatic", "rotate", "keep", "all"] = "flagged"
    folder: str | None = Field(None, max_length=4096)
    min_confidence: float | None = Field(None, ge=0, le=1)
    max_confidence: float | None = Field(None, ge=0, le=1)
    ids: list[str] | None = Field(None, max_length=100_000)


def _one_line(exc: RequestValidationError) -> str:
    """A payload's first problem, without echoing its input (which may not even be valid JSON)."""
    errors = exc.errors()
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {first.get('msg', 'invalid')}{more}".replace("\n", " ")


def _status(exc: Exception) -> int:
    if isinstance(exc, UnknownItem):
        return 404
    if isinstance(exc, InvalidDecision):
        return 422
    if isinstance(exc, ContentChanged):
        return 409
    return 400


def create_app(
    archive: str | Path,
    reviewer: str | None = None,
    state_dir: str | Path | None = None,
    reports: list[str | Path] | None = None,
    allowed_hosts: list[str] | None = None,
    page_size: int = PAGE,
) -> FastAPI:
    """The review app for one archive (``allowed_hosts``: host names requests may carry;
    ``page_size``: photos a listing holds unless it asks for another number)."""
    queue = ReviewQueue(archive, state_dir, reports or ())
    pictures = Pictures(queue.root)
    who = reviewer or default_reviewer()
    app = FastAPI(title="orient review", docs_url=None, redoc_url=None, openapi_url=None)
    hosts = list(allowed_hosts or LOOPBACK)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts)
    snapshot: dict[str, object] = {"at": 0.0, "items": []}

    def items(max_age_s: float = 0.0) -> list[ReviewItem]:
        if time.monotonic() - snapshot["at"] > max_age_s:
            snapshot["items"], snapshot["at"] = queue.items(), time.monotonic()
        return snapshot["items"]

    def find(item_id: str) -> ReviewItem:
        for item in items(max_age_s=30):
            if item.id == item_id:
                return item
        for item in items():
            if item.id == item_id:
                return item
        raise HTTPException(404, f"no photo with id {item_id!r} in this archive's review queue")

    @app.middleware("http")
    async def same_origin_only(request: Request, call_next):
        refused = _refusal(request)
        response = refused if refused is not None else await call_next(request)
        response.headers.update(_PAGE_GUARDS)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid_payload(request: Request, exc: RequestValidationError):
        return JSONResponse({"detail": _one_line(exc)}, status_code=422)

    @app.exception_handler(ReviewError)
    async def review_error(request: Request, exc: ReviewError):
        return JSONResponse({"detail": str(exc)}, status_code=_status(exc))

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=_NO_STORE)

    @app.get("/api/state")
    def queue_state(
        kind: Literal["flagged", "automatic", "rotate", "keep", "all"] = "flagged",
        folder: str | None = None,
        min_confidence: float | None = None,
        max_confidence: float | None = None,
        state: Literal["any", "unreviewed", "decided", "applied"] = "any",
        offset: int | None = Query(None, ge=0),
        limit: int = Query(page_size, ge=1, le=MAX_PAGE),
        around: str | None = Query(None, max_length=64),
    ) -> JSONResponse:
        """One page of the filtered queue (``around``: the page holding that item, when no
        ``offset`` is given), with the counts of the whole queue."""
        everything = items()
        in_kind = select(everything, kind)
        in_range = select(in_kind, kind, folder, min_confidence, max_confidence)
        shown = select(in_range, kind, None, None, None, state)
        if offset is None:
            at = next((n for n, i in enumerate(shown) if i.id == around), 0) if around else 0
            offset = at - at % limit
        counts = {k: progress(select(everything, k)) for k in KINDS}
        return JSONResponse(
            {
                "archive": str(queue.root),
                "reviewer": who,
                "kind": kind,
                "progress": progress(in_range),
                "counts": counts,
                "folders": sorted({i.folder for i in in_kind}),
                "matching": len(shown),
                "offset": offset,
                "limit": limit,
                "items": [i.as_json() for i in shown[offset : offset + limit]],
            },
            headers=_NO_STORE,
        )

    @app.get("/api/items/{item_id}")
    def item(item_id: str) -> JSONResponse:
        return JSONResponse(find(item_id).as_json(), headers=_NO_STORE)

    def picture(item_id: str, rotation: int, kind: str) -> Response:
        if rotation not in orientation.ROTATIONS:
            raise HTTPException(404, "a candidate is a turn of 0, 90, 180 or 270 degrees")
        found = find(item_id)
        made = pictures.of(found)
        k = orientation.class_index(rotation)
        if kind == "evidence":
            if made.evidence is None:
                raise HTTPException(404, made.note or "no evidence for this photo")
            return Response(made.evidence[k], media_type="image/jpeg", headers=_PICTURE_CACHE)
        return Response(made.candidates[k], media_type="image/jpeg", headers=_PICTURE_CACHE)

    @app.get("/api/items/{item_id}/candidate/{rotation}.jpg")
    def candidate(item_id: str, rotation: int) -> Response:
        return picture(item_id, rotation, "candidate")

    @app.get("/api/items/{item_id}/evidence/{rotation}.jpg")
    def evidence(item_id: str, rotation: int) -> Response:
        return picture(item_id, rotation, "evidence")

    @app.post("/api/items/{item_id}/decision")
    def decide(item_id: str, decision: Decision) -> JSONResponse:
        decided = queue.decide(item_id, decision.rotation_deg, who)
        snapshot["at"] = 0.0
        return JSONResponse(decided.as_json(), headers=_NO_STORE)

    @app.post("/api/accept")
    def accept(selection: Selection) -> JSONResponse:
        chosen = select(
            items(),
            selection.kind,
            selection.folder,
            selection.min_confidence,
            selection.max_confidence,
            "unreviewed",
        )
        if selection.ids is not None:
            wanted = set(selection.ids)
            chosen = [i for i in chosen if i.id in wanted]
        accepted = queue.accept_suggestions(chosen, who)
        snapshot["at"] = 0.0
        return JSONResponse(
            {"accepted": len(accepted), "items": [i.as_json() for i in accepted]}, headers=_NO_STORE
        )

    @app.get("/photo/{rel_path:path}")
    def photo(rel_path: str) -> Response:
        """The photo at full size (as displayed), for a closer look; only this archive's files."""
        try:
            data = full_view(queue.root, rel_path)
        except (
            OutsideArchive,
            FileNotFoundError,
            NotADirectoryError,
            IsADirectoryError,
            PermissionError,
            ImageReadError,
        ):
            raise HTTPException(404, "no such photo in this archive") from None
        return Response(data, media_type="image/jpeg", headers=_NO_STORE)

    return app


def _refusal(request: Request) -> JSONResponse | None:
    """Why a request is refused before it reaches the app, or None.

    Writes must be JSON from this page's origin, with a declared body of at most MAX_BODY bytes;
    photos and pictures are refused to other sites' pages (a browser's ``Sec-Fetch-Site``), so
    no site can show or probe this archive's photos through the operator's browser."""
    site = request.headers.get("sec-fetch-site")
    if request.method in ("GET", "HEAD"):
        if site is not None and site not in _FROM_THIS_PAGE and request.url.path != "/":
            return JSONResponse({"detail": "requests from other sites are refused"}, status_code=403)
        return None
    origin = request.headers.get("origin")
    if (origin is not None and urlsplit(origin).netloc != request.headers.get("host")) or (
        site is not None and site not in _FROM_THIS_PAGE
    ):
        return JSONResponse({"detail": "cross-origin requests are refused"}, status_code=403)
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return JSONResponse({"detail": "send JSON (Content-Type: application/json)"}, status_code=415)
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        return JSONResponse({"detail": "a request body needs its Content-Length"}, status_code=411)
    if int(length) > MAX_BODY:
        return JSONResponse({"detail": f"request body over {MAX_BODY} bytes"}, status_code=413)
    return None


def check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        # As the server itself binds: a port left in TIME_WAIT by the last run is free to use.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise OrientError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another port with --port"
            ) from None


def serve(
    archive: str | Path,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    reviewer: str | None = None,
    state_dir: str | Path | None = None,
    reports: list[str | Path] | None = None,
    announce=print,
) -> None:
    """Serve the review page until interrupted (Ctrl+C); every decision is already saved."""
    import uvicorn

    hosts = ["*"] if host in ("0.0.0.0", "::") else [*LOOPBACK, host]
    if reviewer is not None and not reviewer.strip():
        raise OrientError("--reviewer needs a name")
    queue = ReviewQueue(archive, state_dir, reports or ())
    check_port_free(host, port)
    found = queue.items()
    if not queue.report_paths():
        places = ", ".join(str(reports_dir(f)) for f in queue.folders.all)
        announce(
            f"no reports of this archive in {places}: run `orient autorotate {archive}` first "
            "(or give --report / --state-dir)"
        )
    else:
        flagged, automatic = progress(select(found, "flagged")), progress(select(found, "automatic"))
        announce(
            f"{flagged['total']} flagged photos ({flagged['reviewed']} reviewed), "
            f"{automatic['total']} automatic decisions to audit"
        )
    app = create_app(archive, reviewer, state_dir, reports, allowed_hosts=hosts)
    shown = f"[{host}]" if ":" in host else host
    announce(
        f"review page for {Path(archive).resolve()}: http://{shown}:{port}/  (Ctrl+C to stop; "
        "decisions are saved as you make them)"
    )
    if host not in LOOPBACK:
        announce(
            f"warning: listening on {host}: anyone who can reach this machine can see the photos and decide"
        )
    try:
        uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning")).run()
    except KeyboardInterrupt:  # Ctrl+C is how the page is closed, not a failure
        pass
    announce("review page stopped; every decision was saved as it was made")
