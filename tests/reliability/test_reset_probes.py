"""Password reset must not tell who has an account, and a reset link must work exactly once."""

from __future__ import annotations

import statistics
import time

from tests.auth_helpers import NEW_PASSWORD, last_link, mails_to
from tests.conftest import AuthActions, create_user, csrf_token, sql
from tests.reliability.conftest import in_threads
from tests.reliability.test_signup_probes import shape

GROUP = "password-reset probes and reused links"


def probe(app, email: str, address: str = "198.51.100.7"):
    """A prober's "forgot password" from a fresh client: the answer, the page it leads to and
    how long the answer took."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    token = csrf_token(client, "/password/forgot")
    started = time.perf_counter()
    response = client.post("/password/forgot", data={"email": email, "csrf_token": token})
    took = time.perf_counter() - started
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    return response, page.replace(email, "ADDRESS"), took


def test_a_known_and_an_unknown_address_get_the_same_answer_in_the_same_time(app, figures):
    create_user(app, "ada@example.com")
    known, unknown = [], []
    for n in range(15):  # interleaved, so load on the machine hits both alike
        known.append(probe(app, "ada@example.com"))
        unknown.append(probe(app, f"nobody{n}@example.com"))
    for (a, page_a, _), (b, page_b, _) in zip(known, unknown, strict=True):
        assert figures.attack(GROUP, refused=shape(a) == shape(b) and page_a == page_b)
    assert shape(known[0][0])["location"] == "/password/forgot/sent"
    # Only the account was mailed: the probes learnt nothing the owner does not see.
    assert len(mails_to(app, "ada@example.com")) == 15
    assert sql(app, "select count(*) from outgoing_mail") == [(15,)]
    # The same time, within noise: medians of 15 answers each, 25 % either way.
    ratio = statistics.median(t for *_, t in known) / statistics.median(t for *_, t in unknown)
    print(f"reset probes: median known / unknown = {ratio:.3f}")
    assert figures.attack(GROUP, refused=0.75 < ratio < 1.33), ratio


def test_one_reset_link_submitted_many_times_at_once_works_once(app, figures):
    create_user(app, "ada@example.com")
    asker = app.test_client()
    token = csrf_token(asker, "/password/forgot")
    asker.post("/password/forgot", data={"email": "ada@example.com", "csrf_token": token})
    path = last_link(app, "ada@example.com", "/password/reset/")

    def opened(n: int):
        client = app.test_client()
        client.get(path)
        form_token = csrf_token(client, "/password/reset")
        password = f"{NEW_PASSWORD} {n}"
        return lambda: (
            client.post(
                "/password/reset", data={"new_password": password, "csrf_token": form_token}
            ).status_code,
            password,
        )

    results = in_threads([opened(n) for n in range(6)], workers=6)
    statuses = sorted(status for status, _ in results)
    figures.count_5xx(statuses)
    once = statuses == [303, 410, 410, 410, 410, 410]
    assert figures.attack(GROUP, refused=once), statuses
    [winner] = [password for status, password in results if status == 303]
    assert AuthActions(app, app.test_client()).login(password=winner).status_code == 303
    # One "password changed" notice: the losers changed nothing.
    assert len(mails_to(app, "ada@example.com")) == 2
