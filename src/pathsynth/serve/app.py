"""The web app: its settings, the application factory and the server.

:func:`create_app` builds a Starlette application over one workspace: a read-only catalog reader
for the browser, the Turing-test tables (the only ones it writes), a thumbnail cache and the
Jinja2 templates. :func:`serve` runs it under uvicorn.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from pathsynth.catalog.api import Workspace, open_reader
from pathsynth.errors import ServeError
from pathsynth.serve.pages import page_templates
from pathsynth.serve.security import (
    LOOPBACK_HOSTS,
    MIN_OPERATOR_TOKEN,
    OPERATOR_TOKEN_ENV,
    SecurityHeaders,
    SignInGuard,
    is_loopback,
)
from pathsynth.serve.thumbnails import ThumbnailCache
from pathsynth.turing.store import TuringBook

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


@dataclass(frozen=True)
class ServeSettings:
    """How the app runs.

    Args:
        host: the address it binds (decides which Host headers are accepted).
        port: the port.
        operator_token: the secret the operator signs in with (``serve`` makes one at start
            unless told otherwise); None: no operator sign-in.
        open_operator: with no token, whoever reaches the server on loopback without a proxy's
            headers is the operator: for a trusted single-user machine only (``serve
            --no-operator-token``). A proxy or port forwarder on the same host makes any
            request look local, and a rater on the machine would be the operator too.
        cache: the thumbnail cache folder; None: ``<workspace>/cache/thumbnails``.
        base_url: how raters reach the server (a TLS proxy's address, say): the links shown to
            the operator start with it, and its host is accepted in Host and Origin headers
            besides the bound address.
    """

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    operator_token: str | None = None
    cache: Path | None = None
    base_url: str = ""
    open_operator: bool = False

    def check(self) -> None:
        """Refuse settings that would expose the catalog.

        Raises:
            ServeError: another address than loopback without an operator token, a token
                shorter than 16 characters (spaces aside), or a token with an open operator.
        """
        token = self.operator_token
        if token is not None and len(token.strip()) < MIN_OPERATOR_TOKEN:
            raise ServeError(
                f"the operator token must have at least {MIN_OPERATOR_TOKEN} characters other "
                "than spaces"
            )
        if token is not None and self.open_operator:
            raise ServeError("an operator token and an open operator exclude each other")
        if not is_loopback(self.host) and self.operator_token is None:
            raise ServeError(
                f"serving on {self.host} (not 127.0.0.1) needs an operator token: set "
                f"${OPERATOR_TOKEN_ENV} to a secret of {MIN_OPERATOR_TOKEN}+ characters"
            )

    def check_port(self) -> None:
        """Refuse a port that something already listens on, before anything says "serving".

        Raises:
            ServeError: the address and port cannot be bound (in use, or not this machine's).
        """
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            try:
                probe.bind((self.host, self.port))
            except OSError as error:
                raise ServeError(
                    f"cannot serve on {self.host}:{self.port}: {error.strerror or error} (another "
                    "server on that port? choose one with --port)"
                ) from None

    @property
    def link_base(self) -> str:
        """The URL raters' links start with."""
        if self.base_url:
            return self.base_url.rstrip("/")
        shown = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{shown}:{self.port}"


async def _http_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    if error.status_code in (301, 302, 303, 307) and error.headers:
        return Response(status_code=error.status_code, headers=error.headers)
    messages = {404: "Not found.", 403: "Refused.", 405: "Method not allowed."}
    detail = error.detail if error.status_code == 403 else messages.get(error.status_code, "")
    page = f"<!doctype html><title>{error.status_code}</title><p>{_escape(str(detail))}</p>"
    return HTMLResponse(page, status_code=error.status_code, headers=error.headers)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def create_app(space: Workspace, settings: ServeSettings | None = None) -> Starlette:
    """The web app over one workspace.

    Args:
        space: the workspace whose catalog, experiments and runs are shown.
        settings: how it runs (default: loopback, no operator token).

    Raises:
        ServeError: what :meth:`ServeSettings.check` or :func:`thumbnail_folder` refuses.
    """
    from pathsynth.serve.routes import catalog_routes
    from pathsynth.serve.turing_pages import turing_routes

    settings = settings or ServeSettings()
    settings.check()
    cache = settings.cache or thumbnail_folder(space)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        reader = open_reader(space)
        book = TuringBook.open(space)
        app.state.reader = reader
        app.state.book = book
        app.state.thumbs = ThumbnailCache(reader, cache)
        try:
            yield
        finally:
            reader.close()
            book.close()

    hosts = [*LOOPBACK_HOSTS, "[::1]", settings.host] if is_loopback(settings.host) else ["*"]
    if settings.base_url and urlsplit(settings.base_url).hostname:
        hosts.append(str(urlsplit(settings.base_url).hostname))
    static = str(resources.files("pathsynth.serve").joinpath("static"))
    app = Starlette(
        routes=[
            *catalog_routes(),
            *turing_routes(),
            Mount("/static", StaticFiles(directory=static), name="static"),
        ],
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=hosts),
            Middleware(SecurityHeaders),
        ],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.space = space
    app.state.settings = settings
    app.state.sign_in_guard = SignInGuard()
    app.state.templates = page_templates()
    return app


def serve(
    space: Workspace, settings: ServeSettings, log_level: str = "warning"
) -> None:  # pragma: no cover - runs until stopped; the browser tests start it as a process
    """Run the app under uvicorn until interrupted.

    The access log is off: a rater's link holds their token, and it must not land in a log.

    Raises:
        ServeError: what :meth:`ServeSettings.check` refuses.
    """
    import uvicorn

    app = create_app(space, settings)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        access_log=False,
        log_level=log_level,
        server_header=False,
        proxy_headers=False,
    )


LOW_DISK_BYTES = 64 * 1024 * 1024  # below this, raters' answers may soon be refused


def answer_warnings(space: Workspace) -> list[str]:
    """What keeps raters' answers from being stored, said at start rather than at their first
    answer: an embedded catalog in a workspace this user cannot write, or a disk almost full.
    (Answers refused while serving stay in the rater's page to be sent again.)"""
    warnings = []
    embedded = space.db_url.startswith("sqlite")
    if embedded and not space.writable:
        warnings.append(
            f"{space.root} cannot be written by this user: the catalog is read-only, so raters' "
            "answers will be refused (kept in their page) until it can"
        )
    elif embedded:
        free = shutil.disk_usage(space.root).free
        if free < LOW_DISK_BYTES:
            warnings.append(
                f"the disk of {space.root} has {free // (1024 * 1024)} MB free: raters' answers "
                "will be refused (kept in their page) once it is full"
            )
    return warnings


def thumbnail_folder(space: Workspace) -> Path:
    """Where thumbnails are cached: ``<workspace>/cache/thumbnails``, or, for a workspace that
    cannot be written, a private folder of this user's under the system's temporary folder.

    Raises:
        ServeError: the temporary folder's name is taken by a link or by another user's folder
            (its files would be served as thumbnails). A folder of this user's that others could
            read is made private.
    """
    if space.writable:
        return space.root / "cache" / "thumbnails"
    key = hashlib.sha256(str(space.root).encode()).hexdigest()[:12]
    folder = Path(tempfile.gettempdir()) / f"pathsynth-thumbnails-{os.getuid()}-{key}"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        found = folder.lstat()
    except OSError as error:
        raise ServeError(f"cannot make the thumbnail cache {folder}: {error.strerror}") from None
    if not stat.S_ISDIR(found.st_mode) or found.st_uid != os.getuid():
        raise ServeError(f"the thumbnail cache {folder} is not a folder of this user's; remove it")
    if found.st_mode & 0o077:  # thumbnails of patients' images: for this user's eyes only
        folder.chmod(0o700)
    return folder


def operator_token_from_env() -> str | None:
    """``$PATHSYNTH_OPERATOR_TOKEN``, or None when unset or empty."""
    return os.environ.get(OPERATOR_TOKEN_ENV) or None
