"""Refresh tokens under random sequences of log-ins, refreshes, reuses, log-outs, password
changes, "log out everywhere" and the passing of time.

The machine keeps its own model of which families are live and which token of each is current,
and checks the API against it after every step:

- at most one live refresh token per family (in the database, and through the API);
- a token already exchanged revokes its whole family (`refresh_token_reused`);
- a revoked family never yields tokens again, and its access tokens are refused at once;
- access tokens expire (they last one second here, and time passes).

`REFRESH_EXAMPLES=200 pytest tests/api/test_refresh_properties.py` tries harder.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import jwt
from flask import Flask
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import delete, update

from tests.api.conftest import PASSWORD, bearer
from tests.conftest import _empty_all_tables, create_user, make_app, sql
from webapp.api.refresh_tokens import hash_token
from webapp.auth import sessions
from webapp.extensions import db
from webapp.models import RefreshToken, RefreshTokenFamily, User

EMAIL = "ada@example.com"
# Whole seconds (JWT `exp`); a token is certainly valid this long after it was issued.
ACCESS_SECONDS = 1
SURELY_VALID_FOR = 0.3


@dataclass
class Family:
    current: str  # the one refresh token of the family that may be exchanged
    live: bool = True
    exchanged: list[str] = field(default_factory=list)  # in the order they were exchanged


@dataclass(frozen=True)
class Access:
    token: str
    family: str
    expires: float  # epoch seconds


class RefreshTokens(RuleBasedStateMachine):
    refresh_tokens = Bundle("refresh_tokens")

    def __init__(self, app: Flask, user_id: int) -> None:
        super().__init__()
        self.app, self.user_id = app, user_id
        self.client = self.app.test_client()
        self.password = PASSWORD
        self.families: dict[str, Family] = {}  # by family id (the access tokens' `fam`)
        self.family_of: dict[str, str] = {}  # refresh token -> family id
        self.access: list[Access] = []
        self.waits = 0
        with app.app_context():
            self.password_hash = db.session.get(User, user_id).password_hash

    def teardown(self) -> None:
        """Back to one user with no log-ins, without hashing a password again (it is slow)."""
        with self.app.app_context():
            db.session.execute(delete(RefreshToken))
            db.session.execute(delete(RefreshTokenFamily))
            db.session.execute(
                update(User).where(User.id == self.user_id).values(password_hash=self.password_hash)
            )
            db.session.commit()

    def _record(self, tokens: dict[str, str | int]) -> tuple[str, str]:
        claims = jwt.decode(str(tokens["accessToken"]), options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == ACCESS_SECONDS == tokens["expiresIn"]
        family = claims["fam"]
        self.access.append(Access(str(tokens["accessToken"]), family, claims["exp"]))
        refresh = str(tokens["refreshToken"])
        assert refresh not in self.family_of  # never handed out twice
        self.family_of[refresh] = family
        return family, refresh

    # --- rules --------------------------------------------------------------------------------

    @rule(target=refresh_tokens)
    def log_in(self) -> str:
        response = self.client.post(
            "/api/v1/auth/login", json={"email": EMAIL, "password": self.password}
        )
        assert response.status_code == 200, response.get_json()
        family, refresh = self._record(response.get_json()["tokens"])
        assert family not in self.families
        self.families[family] = Family(current=refresh)
        return refresh

    @rule(target=refresh_tokens, token=refresh_tokens)
    def refresh(self, token: str) -> str:
        """Any token ever issued: the current one, one already exchanged, or a dead family's."""
        family = self.families[self.family_of[token]]
        response = self.client.post("/api/v1/auth/refresh", json={"refreshToken": token})
        body = response.get_json()
        if not family.live:
            assert response.status_code == 401, body
            assert body["error"]["code"] == "invalid_refresh_token"
            return token
        if token in family.exchanged:
            assert response.status_code == 401, body
            assert body["error"]["code"] == "refresh_token_reused"
            family.live = False
            return token
        assert token == family.current
        assert response.status_code == 200, body
        _, new = self._record(body["tokens"])
        family.exchanged.append(token)
        family.current = new
        return new

    # Random picks from the bundle rarely hit the interesting cases; these two aim at them.

    @precondition(lambda self: any(family.live for family in self.families.values()))
    @rule(target=refresh_tokens, data=st.data())
    def refresh_a_current_token(self, data: st.DataObject) -> str:
        # In the order of the log-ins, not of the random ids: a replay must pick the same one.
        live = [fid for fid, family in self.families.items() if family.live]
        return self.refresh(self.families[data.draw(st.sampled_from(live))].current)

    @precondition(lambda self: any(family.exchanged for family in self.families.values()))
    @rule(data=st.data())
    def reuse_an_exchanged_token(self, data: st.DataObject) -> None:
        exchanged = [token for family in self.families.values() for token in family.exchanged]
        self.refresh(data.draw(st.sampled_from(exchanged)))

    @rule(token=refresh_tokens)
    def log_out(self, token: str) -> None:
        response = self.client.post("/api/v1/auth/logout", json={"refreshToken": token})
        assert response.status_code == 200, response.get_json()
        self.families[self.family_of[token]].live = False

    @precondition(lambda self: self.password == PASSWORD)
    @rule()
    def change_password(self) -> None:
        """Once per run: a password change ends every family."""
        self.password = "an entirely new passphrase"
        with self.app.test_request_context():
            sessions.change_password(db.session.get(User, self.user_id), self.password)
        self._end_every_family()

    @rule()
    def log_out_everywhere(self) -> None:
        """The site's "Log out" (or a deactivation, a deletion): a session-version bump."""
        with self.app.app_context():
            sessions.end_sessions(self.user_id)
        self._end_every_family()

    @precondition(lambda self: self.waits < 1 and self.access)
    @rule()
    def time_passes(self) -> None:
        """Until every access token issued so far has expired (once per run: it sleeps)."""
        self.waits += 1
        latest = max((access.expires for access in self.access), default=0)
        time.sleep(max(0.0, latest - time.time()) + 0.02)

    def _end_every_family(self) -> None:
        for family in self.families.values():
            family.live = False

    # --- invariants ---------------------------------------------------------------------------

    @invariant()
    def at_most_one_live_token_per_family(self) -> None:
        rows = sql(
            self.app,
            "select t.family_id, count(*) from refresh_tokens t "
            "join refresh_token_families f on f.id = t.family_id "
            "where t.revoked_at is null group by t.family_id",
        )
        assert all(count == 1 for _, count in rows), rows
        live_in_db = {
            family
            for (family,) in sql(
                self.app, "select id from refresh_token_families where revoked_at is null"
            )
        }
        assert live_in_db == {fid for fid, family in self.families.items() if family.live}
        # The database's one unrevoked token of each live family is the model's current one.
        assert {family for family, _ in rows} == live_in_db
        unrevoked = sql(self.app, "select token_hash from refresh_tokens where revoked_at is null")
        current = {hash_token(family.current) for family in self.families.values() if family.live}
        assert {digest for (digest,) in unrevoked} == current

    @invariant()
    def access_tokens_answer_as_their_family_and_clock_say(self) -> None:
        for access in self.access[-6:]:
            now = time.time()
            expired = now >= access.expires
            surely_valid = now + SURELY_VALID_FOR < access.expires
            if not expired and not surely_valid:
                continue  # on the edge of its last second
            response = self.client.get("/api/v1/credits/balance", headers=bearer(access.token))
            expected = 200 if surely_valid and self.families[access.family].live else 401
            assert response.status_code == expected, (access, response.get_json())


def test_refresh_token_rules_hold_under_random_sequences(_schema, database_url):
    app = make_app(database_url, ACCESS_TOKEN_LIFETIME_SECONDS=ACCESS_SECONDS)
    user_id = create_user(app, password=PASSWORD)  # TestConfig's cheap hash: log-ins are fast
    try:
        run_state_machine_as_test(
            lambda: RefreshTokens(app, user_id),
            settings=settings(
                max_examples=int(os.environ.get("REFRESH_EXAMPLES", "20")),
                stateful_step_count=20,
                deadline=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        _empty_all_tables(database_url)
