"""What keeps the web app to its users: operator sign-in, rater tokens, CSRF and response headers.

- The operator (whoever runs ``pathsynth serve``) sees everything, after signing in once per
  browser with the operator token (an HttpOnly cookie): ``$PATHSYNTH_OPERATOR_TOKEN``, or one
  ``serve`` makes at start and prints as a sign-in link, as Jupyter does. "Local" cannot be the
  test: a reverse proxy or a port forwarder on the same host makes any request look local, and a
  rater on the lab's machine would be the operator. Only ``serve --no-operator-token`` (a trusted
  single-user machine) lets loopback requests without a proxy's headers in unsigned.
- A rater sees only their own test: their secret link sets a cookie holding their token, and every
  rater page and image checks that the token's test is the one in the URL (else 404).
- Every form carries a CSRF token that must equal the browser's ``ps_csrf`` cookie (double
  submit); a POST without it, or with another, is refused with 403.
- Every response says ``nosniff``, no framing, no referrer (so no token leaves in a Referer
  header) and a content security policy allowing only this server's own styles and images; pages
  and CSV files are not to be stored by the browser.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_COOKIE = "ps_csrf"
CSRF_FIELD = "csrf_token"
OPERATOR_COOKIE = "ps_operator"
RATER_COOKIE = "ps_rater"
MIN_OPERATOR_TOKEN = 16
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
OPERATOR_TOKEN_ENV = "PATHSYNTH_OPERATOR_TOKEN"
# What a reverse proxy adds (nginx's default also rewrites Host to the loopback address it
# forwards to, so the Host check cannot tell): behind one, loopback no longer means this machine.
PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-forwarded-host", "x-real-ip")

PAGE_POLICY = (
    "default-src 'none'; img-src 'self' data:; style-src 'self'; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
# The experiment reports are self-contained pages with inline styles and data: images; they are
# sandboxed so nothing in them runs with this site's rights.
REPORT_POLICY = (
    "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; font-src data:; "
    "sandbox; frame-ancestors 'none'"
)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is an address only this machine can reach: ``localhost`` or a loopback
    IP literal (127.0.0.0/8, ::1). A host name that merely starts with "127." (say
    ``127.0.0.1.example.org``) is not one: it may resolve to any address."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def same_secret(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison of two secrets; False when either is missing."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def csrf_token(request: Request) -> str:
    """The browser's CSRF token: its cookie's, or a new one that the response will set."""
    token = request.cookies.get(CSRF_COOKIE) or request.scope.get("ps_new_csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        request.scope["ps_new_csrf"] = token
    return str(token)


async def check_csrf(request: Request) -> dict[str, str]:
    """The POSTed form, once its CSRF token matches the cookie.

    Raises:
        HTTPException: 403 when the token is missing or wrong, or the Origin header names
            another site than the Host header or the settings' ``base_url``.
    """
    origin = request.headers.get("origin")
    # Host only, not the scheme: behind a TLS proxy the browser says https, uvicorn sees http.
    # A proxy may also forward with its own Host (nginx's default): --base-url names the site.
    ours = {request.headers.get("host"), urlsplit(request.app.state.settings.base_url).netloc}
    if origin and origin != "null" and urlsplit(origin).netloc not in ours - {"", None}:
        raise HTTPException(403, "cross-site form refused")
    form = await request.form()
    values = {key: value for key, value in form.items() if isinstance(value, str)}
    if not same_secret(values.get(CSRF_FIELD), request.cookies.get(CSRF_COOKIE)):
        raise HTTPException(403, "the form's CSRF token is missing or wrong; reload the page")
    return values


def proxied(request: Request) -> bool:
    """Whether a reverse proxy forwarded this request (it says so in one of
    :data:`PROXY_HEADERS`): it may come from anywhere, although it reached us on loopback."""
    return any(name in request.headers for name in PROXY_HEADERS)


class SignInGuard:
    """Guessing the operator token, throttled: after ``limit`` failed attempts (a wrong token at
    ``/login`` or a wrong operator cookie on any page) within ``window`` seconds, every attempt,
    right or wrong, is refused until the oldest failure is ``window`` seconds old. A lock-out
    that also keeps the operator out for up to a minute is the price: letting a right token
    through would tell a guesser when they hit it.

    Args:
        limit: failures allowed within the window.
        window: seconds.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self, limit: int = 10, window: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.window, self.clock = limit, window, clock
        self._failures: deque[float] = deque()
        self._lock = threading.Lock()

    def wait(self) -> float:
        """Seconds until an attempt is heard again; 0 when it is now."""
        with self._lock:
            now = self.clock()
            while self._failures and now - self._failures[0] >= self.window:
                self._failures.popleft()
            if len(self._failures) < self.limit:
                return 0.0
            return self.window - (now - self._failures[0])

    def check(self, given: str | None, expected: str) -> bool:
        """Whether ``given`` is the token, counting it as a failure when it is not; never True
        while attempts are refused."""
        if self.wait() > 0:
            return False
        if same_secret(given, expected):
            return True
        with self._lock:
            self._failures.append(self.clock())
        return False


def operator_allowed(request: Request) -> bool:
    """Whether this request may see operator pages: it signed in with the operator token, or the
    server has an open operator (``--no-operator-token``) and no proxy forwarded it. A request
    without the operator cookie is no guess; one with a wrong cookie counts as a failed sign-in
    (:class:`SignInGuard`)."""
    settings = request.app.state.settings
    if settings.operator_token is not None:
        cookie = request.cookies.get(OPERATOR_COOKIE)
        if not cookie:
            return False
        guard: SignInGuard = request.app.state.sign_in_guard
        return guard.check(cookie, settings.operator_token)
    return bool(settings.open_operator) and not proxied(request)


def require_operator(request: Request) -> None:
    """Refuse a request that is not the operator's.

    Raises:
        HTTPException: 403 where no sign-in exists (a proxied request to an open operator, or
            no token at all); 303 to the sign-in page for a page; 403 for anything else.
    """
    if operator_allowed(request):
        return
    settings = request.app.state.settings
    if settings.operator_token is None and settings.open_operator:
        raise HTTPException(403, f"reached through a proxy: set ${OPERATOR_TOKEN_ENV} and sign in")
    if settings.operator_token is None:
        raise HTTPException(403, "this server has no operator sign-in")
    # a cookie of an earlier server (another token) is dropped, so it is not counted as a guess
    # on every page (SignInGuard)
    forget = {"Set-Cookie": f"{OPERATOR_COOKIE}=; Max-Age=0; Path=/; HttpOnly; SameSite=Strict"}
    stale = forget if request.cookies.get(OPERATOR_COOKIE) else {}
    if request.method == "GET" and request.url.path.rsplit("/", 1)[-1].find(".") < 0:
        raise HTTPException(303, headers={"Location": "/login", **stale})
    raise HTTPException(403, "sign in as the operator first", headers=stale or None)


class SecurityHeaders:
    """ASGI middleware: security headers on every response, and the CSRF cookie where a page
    made a new token."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("Content-Security-Policy", PAGE_POLICY)
                headers.setdefault("Cross-Origin-Resource-Policy", "same-origin")
                if headers.get("content-type", "").startswith(("text/html", "text/csv")):
                    # pages show rater links, patient codes and answers: keep them off the disk
                    # cache and the back-forward cache of a shared lab computer
                    headers.setdefault("Cache-Control", "no-store")
                new = scope.get("ps_new_csrf")
                if new:
                    headers.append(
                        "Set-Cookie",
                        f"{CSRF_COOKIE}={new}; Path=/; HttpOnly; SameSite=Strict",
                    )
            await send(message)

        await self.app(scope, receive, send_with_headers)
