from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy.orm import Session, sessionmaker

from forewarn.config.loading import ConfigError
from forewarn.web.app import create_app
from forewarn.web.auth import COOKIE, Role, TokenTable, tokens_from_environ
from forewarn.web.dependencies import page_access
from forewarn.web.throttle import FailureLimiter
from tests.web.conftest import (
    NOW,
    OPS_TOKEN,
    TECH_TOKEN,
    VIEWER_TOKEN,
    ClientFactory,
    FixedClock,
    make_config,
)
from tests.web.html import visible_text
from tests.web.scenario import Scenario

BANNER = "No authentication configured"
TOKENS = {VIEWER_TOKEN: "viewer", TECH_TOKEN: "technician"}


@pytest.fixture
def guarded(
    store: sessionmaker[Session], scenario: Scenario, make_client: ClientFactory
) -> TestClient:
    """The console with an ops token from FOREWARN_API_TOKEN and a viewer and technician."""
    return make_client(store, environ={"FOREWARN_API_TOKEN": OPS_TOKEN}, tokens=TOKENS)


def test_it_opens_the_console_with_a_warning_when_no_token_is_configured(
    client: TestClient,
) -> None:
    page = client.get("/")
    api = client.get("/api/tickets")

    assert page.status_code == 200
    assert BANNER in visible_text(page.text)
    assert api.status_code == 200


def test_it_asks_a_browser_for_a_token_with_a_form_that_posts_it(guarded: TestClient) -> None:
    page = guarded.get("/tickets?show=all")

    assert page.status_code == 401
    text = visible_text(page.text)
    assert "Access token needed" in text
    assert "enter an access token to open the console" in text
    assert '<form class="token" method="post" action="/login">' in page.text
    assert 'name="next" value="/tickets?show=all"' in page.text
    assert "Inverter fault" not in text


def _session_cookie(response: Response) -> str:
    cookie = response.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    return cookie.split(";")[0].split("=", 1)[1]


def test_it_trades_a_posted_token_for_a_server_side_session(guarded: TestClient) -> None:
    response = guarded.post(
        "/login",
        data={"token": VIEWER_TOKEN, "next": "/tickets?show=all"},
        follow_redirects=False,
    )

    assert response.status_code == 303
    assert response.headers["location"] == "/tickets?show=all"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Path=/" in cookie
    assert "Secure" not in cookie  # plain http, no trusted proxy
    session_id = _session_cookie(response)
    assert VIEWER_TOKEN not in cookie
    assert len(session_id) >= 40

    page = guarded.get("/tickets?show=all")

    assert page.status_code == 200
    text = visible_text(page.text)
    assert "Low output at Belém villa" in text
    assert BANNER not in text
    assert "viewer sign out" in text


def test_it_trades_a_token_in_the_address_for_a_session_and_drops_it_from_the_address(
    guarded: TestClient,
) -> None:
    response = guarded.get(f"/tickets?show=all&token={VIEWER_TOKEN}", follow_redirects=False)

    assert response.status_code == 303
    assert response.headers["location"] == "/tickets?show=all"
    assert VIEWER_TOKEN not in response.headers["set-cookie"]
    assert guarded.get("/tickets?show=all").status_code == 200


def test_it_sends_a_wrong_token_in_the_address_to_the_sign_in_page_without_it(
    guarded: TestClient,
) -> None:
    response = guarded.get("/tickets?show=all&token=not-the-right-token-at-all")

    assert response.status_code == 401
    assert "not-the-right-token" not in str(response.url)
    assert str(response.url).endswith("/login?next=%2Ftickets%3Fshow%3Dall&failed=1")
    assert "that token is not valid" in visible_text(response.text)
    assert "set-cookie" not in response.headers


def test_it_refuses_a_wrong_posted_token_and_keeps_the_way_back(guarded: TestClient) -> None:
    response = guarded.post("/login", data={"token": "wrong-token-0123456789", "next": "/alerts"})

    assert response.status_code == 401
    assert "that token is not valid" in visible_text(response.text)
    assert 'name="next" value="/alerts"' in response.text
    assert "set-cookie" not in response.headers


def test_it_only_goes_back_to_a_page_of_its_own_after_sign_in(guarded: TestClient) -> None:
    for elsewhere in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
        response = guarded.post(
            "/login", data={"token": OPS_TOKEN, "next": elsewhere}, follow_redirects=False
        )
        assert response.headers["location"] == "/"


def test_it_ends_a_session_on_sign_out_even_for_a_copied_cookie(guarded: TestClient) -> None:
    session_id = _session_cookie(
        guarded.post("/login", data={"token": OPS_TOKEN}, follow_redirects=False)
    )
    assert guarded.get("/").status_code == 200

    guarded.get("/logout")
    guarded.cookies.set(COOKIE, session_id)  # a copy kept from before
    response = guarded.get("/")

    assert response.status_code == 401
    assert "your sign-in has ended" in visible_text(response.text)
    assert response.headers["set-cookie"].startswith(f'{COOKIE}="";')


def test_it_ends_a_session_when_its_lifetime_is_over(
    store: sessionmaker[Session], scenario: Scenario, make_client: ClientFactory
) -> None:
    client = make_client(
        store,
        environ={"FOREWARN_API_TOKEN": OPS_TOKEN},
        yaml_text="web: {session_lifetime: 8h}",
    )
    client.post("/login", data={"token": OPS_TOKEN})
    clock = client.app.state.console.clock  # type: ignore[attr-defined]

    clock.moment = NOW + timedelta(hours=7, minutes=59)
    assert client.get("/").status_code == 200
    clock.moment = NOW + timedelta(hours=8)
    assert client.get("/").status_code == 401


def test_it_ends_the_sessions_of_a_token_that_is_withdrawn(
    store: sessionmaker[Session], scenario: Scenario, make_client: ClientFactory
) -> None:
    before = make_client(store, environ={"FOREWARN_API_TOKEN": OPS_TOKEN}, tokens=TOKENS)
    session_id = _session_cookie(
        before.post("/login", data={"token": VIEWER_TOKEN}, follow_redirects=False)
    )
    # The service restarts with the viewer token taken out of FOREWARN_TOKENS.
    after = make_client(store, environ={"FOREWARN_API_TOKEN": OPS_TOKEN})
    after.cookies.set(COOKIE, session_id)

    assert after.get("/").status_code == 401


def test_it_forgets_a_cookie_it_never_issued(guarded: TestClient) -> None:
    guarded.cookies.set(COOKIE, "a-session-that-never-existed")

    response = guarded.get("/")

    assert response.status_code == 401
    assert response.headers["set-cookie"].startswith(f'{COOKIE}="";')


def test_it_marks_the_cookie_secure_behind_a_trusted_tls_proxy_only(
    store: sessionmaker[Session], scenario: Scenario, make_client: ClientFactory
) -> None:
    forwarded = {"x-forwarded-proto": "https"}
    direct = make_client(store, environ={"FOREWARN_API_TOKEN": OPS_TOKEN})
    proxied = make_client(
        store, environ={"FOREWARN_API_TOKEN": OPS_TOKEN}, yaml_text="web: {trust_proxy: true}"
    )

    untrusted = direct.post(
        "/login", data={"token": OPS_TOKEN}, headers=forwarded, follow_redirects=False
    )
    trusted = proxied.post(
        "/login", data={"token": OPS_TOKEN}, headers=forwarded, follow_redirects=False
    )

    assert "Secure" not in untrusted.headers["set-cookie"]
    assert "Secure" in trusted.headers["set-cookie"]


def test_it_slows_down_a_client_that_keeps_guessing(guarded: TestClient) -> None:
    for _ in range(10):
        assert guarded.post("/login", data={"token": "guess-0123456789abcdef"}).status_code == 401

    page = guarded.post("/login", data={"token": OPS_TOKEN})
    api = guarded.get("/api/tickets", headers={"authorization": f"Bearer {OPS_TOKEN}"})
    link = guarded.get(f"/?token={OPS_TOKEN}", follow_redirects=False)

    # Even the right token waits: the limit is on the client, not on the guess.
    assert page.status_code == 429
    assert "too many wrong tokens" in visible_text(page.text)
    assert 1 <= int(page.headers["retry-after"]) <= 60
    assert api.status_code == 429
    assert int(api.headers["retry-after"]) <= 60
    assert link.status_code == 429


def test_it_counts_wrong_bearer_tokens_per_client_behind_a_trusted_proxy(
    store: sessionmaker[Session], scenario: Scenario, make_client: ClientFactory
) -> None:
    client = make_client(
        store, environ={"FOREWARN_API_TOKEN": OPS_TOKEN}, yaml_text="web: {trust_proxy: true}"
    )

    def call(token: str, address: str) -> int:
        headers = {"authorization": f"Bearer {token}", "x-forwarded-for": f"10.0.0.9, {address}"}
        return client.get("/api/tickets", headers=headers).status_code

    assert [call("wrong-0123456789abcdef", "192.0.2.1") for _ in range(11)][-2:] == [401, 429]
    assert call(OPS_TOKEN, "192.0.2.1") == 429
    assert call(OPS_TOKEN, "192.0.2.2") == 200


def test_it_lets_a_client_try_again_after_a_minute() -> None:
    moment = [1000.0]
    limiter = FailureLimiter(3, monotonic=lambda: moment[0])
    for _ in range(3):
        limiter.failed("192.0.2.1")

    assert limiter.retry_after("192.0.2.1") == 60
    assert limiter.retry_after("192.0.2.2") is None
    moment[0] += 59.5
    assert limiter.retry_after("192.0.2.1") == 1
    moment[0] += 0.5
    assert limiter.retry_after("192.0.2.1") is None


def test_it_treats_forewarn_api_token_as_an_ops_token(guarded: TestClient) -> None:
    guarded.get(f"/?token={OPS_TOKEN}")

    assert "ops sign out" in visible_text(guarded.get("/").text)


def test_it_lets_every_role_read_the_pages(guarded: TestClient) -> None:
    for token in (OPS_TOKEN, TECH_TOKEN, VIEWER_TOKEN):
        page = guarded.get("/notifications", headers={"authorization": f"Bearer {token}"})
        assert page.status_code == 200


def test_it_wants_a_bearer_token_for_the_api_and_metrics(guarded: TestClient) -> None:
    for path in ("/api/tickets", "/api/notifications", "/metrics"):
        response = guarded.get(path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json() == {"detail": "send 'Authorization: Bearer <token>'"}


def test_it_answers_the_api_with_a_valid_bearer_token(guarded: TestClient) -> None:
    response = guarded.get("/api/tickets", headers={"Authorization": f"Bearer {VIEWER_TOKEN}"})

    assert response.status_code == 200
    assert response.json()["total"] == 2


def test_it_rejects_a_wrong_bearer_token(guarded: TestClient) -> None:
    response = guarded.get("/api/tickets", headers={"Authorization": "Bearer guessed-token-xyz"})

    assert response.status_code == 401
    assert response.json() == {"detail": "the bearer token is not valid"}


def test_it_does_not_take_the_browser_cookie_as_api_credentials(guarded: TestClient) -> None:
    # The API is for programs; a page another site tricks the browser into loading
    # must not be able to read it with the console's cookie.
    guarded.get(f"/?token={OPS_TOKEN}")

    assert guarded.get("/api/tickets").status_code == 401


def test_it_refuses_a_role_below_what_a_route_needs(
    store: sessionmaker[Session], scenario: Scenario
) -> None:
    guarded_router = APIRouter(dependencies=[Depends(page_access(Role.ops))])
    guarded_router.add_api_route("/ops-only", lambda: {"ok": "yes"})
    app = create_app(
        make_config({"FOREWARN_API_TOKEN": OPS_TOKEN}),
        store,
        FixedClock(NOW),
        tokens=TOKENS,
        extra_routers=[guarded_router],
    )
    with TestClient(app) as client:
        viewer = client.get("/ops-only", headers={"authorization": f"Bearer {VIEWER_TOKEN}"})
        ops = client.get("/ops-only", headers={"authorization": f"Bearer {OPS_TOKEN}"})

    assert viewer.status_code == 403
    assert "this needs the ops role; your token is viewer" in visible_text(viewer.text)
    assert ops.status_code == 200


def test_it_mounts_extra_routers_without_console_authentication(
    store: sessionmaker[Session],
) -> None:
    webhooks = APIRouter(prefix="/webhooks")
    webhooks.add_api_route("/ping", lambda: {"pong": True}, methods=["POST"])
    app = create_app(
        make_config({"FOREWARN_API_TOKEN": OPS_TOKEN}),
        store,
        FixedClock(NOW),
        extra_routers=[webhooks],
    )
    with TestClient(app) as client:
        response = client.post("/webhooks/ping")
        missing = client.post("/webhooks/other")

    assert response.json() == {"pong": True}
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Not Found"}


def test_it_reads_more_tokens_from_forewarn_tokens() -> None:
    tokens = tokens_from_environ(
        {"FOREWARN_TOKENS": f" viewer:{VIEWER_TOKEN} , technician:{TECH_TOKEN},"}
    )

    assert tokens == {VIEWER_TOKEN: "viewer", TECH_TOKEN: "technician"}
    assert tokens_from_environ({}) == {}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (f"admin:{OPS_TOKEN}", "FOREWARN_TOKENS entry 1: unknown role 'admin'"),
        (f"viewer:{VIEWER_TOKEN},{OPS_TOKEN}", "FOREWARN_TOKENS entry 2: write it as role:token"),
        ("viewer:short", "FOREWARN_TOKENS entry 1: the token must be at least 16 characters"),
        ("viewer:", "FOREWARN_TOKENS entry 1: write it as role:token"),
    ],
)
def test_it_names_the_bad_entry_of_forewarn_tokens_without_printing_a_token(
    value: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        tokens_from_environ({"FOREWARN_TOKENS": value})

    assert str(caught.value).startswith(message)
    assert OPS_TOKEN not in str(caught.value)
    assert "short" not in str(caught.value)


def test_it_refuses_to_start_with_a_weak_token_or_an_unknown_role(
    store: sessionmaker[Session],
) -> None:
    with pytest.raises(ValueError, match="FOREWARN_API_TOKEN must be at least 16 characters"):
        create_app(make_config({"FOREWARN_API_TOKEN": "secret"}), store, FixedClock(NOW))
    with pytest.raises(ValueError, match="unknown role 'root'"):
        create_app(make_config(), store, FixedClock(NOW), tokens={OPS_TOKEN: "root"})


def test_it_tells_each_token_its_role() -> None:
    table = TokenTable({VIEWER_TOKEN: "viewer", OPS_TOKEN: "ops", TECH_TOKEN: "technician"})

    assert table.role_of(VIEWER_TOKEN) is Role.viewer
    assert table.role_of(OPS_TOKEN) is Role.ops
    assert table.role_of(TECH_TOKEN) is Role.technician
    assert table.role_of(OPS_TOKEN[:-1]) is None
    assert table.role_of("") is None
    assert not TokenTable({}).configured


def test_a_named_token_says_who_holds_it_for_the_audit_trail() -> None:
    tokens = tokens_from_environ(
        {"FOREWARN_TOKENS": f"ops:alice:{OPS_TOKEN},viewer:{VIEWER_TOKEN}"}
    )

    table = TokenTable(tokens)

    assert tokens == {OPS_TOKEN: "ops:alice", VIEWER_TOKEN: "viewer"}
    alice = table.principal_of(OPS_TOKEN)
    assert alice is not None and (alice.role, alice.name) == (Role.ops, "ops:alice")
    viewer = table.principal_of(VIEWER_TOKEN)
    assert viewer is not None and viewer.name is None
