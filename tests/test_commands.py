"""`flask users create`."""

from tests.conftest import sql


def test_users_create_makes_a_user_with_a_role(app, runner):
    result = runner.invoke(
        args=[
            "users",
            "create",
            "--email",
            "Mia@Example.com",
            "--password",
            "long enough pw",
            "--role",
            "marketing",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "created user" in result.output
    assert sql(app, "select email, role from users") == [("mia@example.com", "marketing")]


def test_users_create_refuses_duplicates_and_bad_roles(app, runner):
    args = ["users", "create", "--email", "a@example.com", "--password", "long enough pw"]
    assert runner.invoke(args=args).exit_code == 0
    duplicate = runner.invoke(args=args)
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output
    bad_role = runner.invoke(args=[*args[:-2], "--password", "long enough pw", "--role", "god"])
    assert bad_role.exit_code != 0
    assert sql(app, "select count(*) from users") == [(1,)]
