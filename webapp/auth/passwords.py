"""Whether a new password is good enough: long enough, and not one attackers try first.

The lists of common and breached passwords, names, words and keyboard patterns are zxcvbn's
(Dropbox's estimator, maintained on PyPI as `zxcvbn`): a password it scores below
MIN_PASSWORD_SCORE is guessable within about 10^8 tries (`1234567890`, `password123`, `qwertyuiop`),
which an online attacker spread over many addresses can afford.
"""

from __future__ import annotations

from zxcvbn import zxcvbn

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 128
MIN_PASSWORD_SCORE = 2  # zxcvbn's 0-4 scale: 2 is "somewhat guessable", at least 10^8 guesses
WEAK_PASSWORD = (
    "That password is too easy to guess: it is common, appears in breached-password lists or "
    "follows a simple pattern. Try a few unrelated words."
)


def password_problem(password: str, *, email: str | None = None) -> str | None:
    """Why `password` may not be used, for people; None when it is fine.

    The email (and its local part) counts as a word an attacker knows.
    """
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        return f"Use {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters."
    hints = [email, email.partition("@")[0]] if email else []
    # zxcvbn's cost grows with the length; the first 100 characters decide the score anyway.
    if zxcvbn(password[:100], user_inputs=hints)["score"] < MIN_PASSWORD_SCORE:
        return WEAK_PASSWORD
    return None
