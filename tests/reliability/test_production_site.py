"""Issue 13's acceptance run: a production-configured gunicorn (four workers, Redis limits, one
trusted proxy) attacked from outside. The script is tests/reliability/production_site.py, also
run alone by `make attack-production`."""

from __future__ import annotations

import pytest

from tests.reliability.production_site import ATTACKS, production_site

pytestmark = pytest.mark.postgres


def test_a_production_site_refuses_forged_hosts_guessing_and_unknown_environments(figures):
    with production_site() as site:
        attacks = [run(site) for run in ATTACKS]
    for attack in attacks:
        for _ in range(attack.refused):
            figures.attack(attack.group, refused=True)
        for _ in range(attack.tried - attack.refused):
            figures.attack(attack.group, refused=False)
    failed = {attack.name: attack.notes for attack in attacks if not attack.held}
    assert not failed
