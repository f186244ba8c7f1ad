"""Issue 6: admins manage accounts on /admin/users; every change is audited without passwords."""

import hashlib
import hmac
import json

import pytest
from sqlalchemy import func, select

from app.auth.ldap import DIRECTORY_HASH
from app.auth.roles import ROLES, role_allows
from app.extensions import db
from app.models import AuditRecord, User
from tests.conftest import PASSWORD, csrf_token, login
from tests.handover.helpers import signed_in, user

NEW_PASSWORD = "a-brand-new-secret-42"


def _user(app, username: str) -> User | None:
    with app.app_context():
        row = db.session.scalar(select(User).where(User.username == username))
        if row is not None:
            db.session.expunge(row)
        return row


def _post(client, url: str, data: dict | None = None):
    token = csrf_token(client, "/admin/users")
    return client.post(url, data={**(data or {}), "csrf_token": token})


def _audit(app) -> list[AuditRecord]:
    with app.app_context():
        rows = list(db.session.scalars(select(AuditRecord).order_by(AuditRecord.seq)))
        for row in rows:
            db.session.expunge(row)
        return rows


def _count_users(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(User))


def _create(client, username="dave", role="operator", password=NEW_PASSWORD, confirm=None):
    data = {"username": username, "role": role, "password": password}
    data["confirm"] = password if confirm is None else confirm
    return _post(client, "/admin/users/new", data)


def _flashes(client) -> str:
    return client.get("/admin/users").get_data(as_text=True)


def test_list_shows_users_with_source_state_and_last_login(admin_client, app):
    user(app, "bob", "reviewer")
    with app.app_context():
        db.session.add(User(username="carol.dir", role="operator", password_hash=DIRECTORY_HASH))
        db.session.commit()
    html = admin_client.get("/admin/users").get_data(as_text=True)
    for text in ("admin", "bob", "reviewer", "carol.dir", "directory", "local", "never", "active"):
        assert text in html
    assert 'href="/admin/users"' in html  # nav link "Users"


def test_nav_links_for_everyone_and_users_only_for_admins(app):
    html = signed_in(app, "opal", "operator").get("/").get_data(as_text=True)
    assert 'href="/account/tokens"' in html and 'href="/api/docs"' in html
    assert 'href="/admin/users"' not in html


def test_create_local_user_who_can_then_sign_in(admin_client, app, client):
    response = _create(admin_client)
    assert response.status_code == 303
    assert "Created operator dave." in _flashes(admin_client)
    created = _user(app, "dave")
    assert created.role == "operator" and created.active
    assert created.password_hash.startswith("$argon2id$")
    other = app.test_client()
    assert login(other, "dave", NEW_PASSWORD).status_code == 302


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"username": "admin"}, "A user named &#39;admin&#39; already exists."),
        ({"username": "ADMIN"}, "already exists"),
        ({"password": "short-pass1"}, "at least 12 characters"),
        ({"role": "superuser"}, "Unknown role &#39;superuser&#39;"),
        ({"username": "bad name!"}, "Username must be"),
        ({"username": ""}, "This field is required."),
        ({"confirm": "something-else-entirely"}, "The passwords do not match."),
    ],
)
def test_bad_input_on_create_explains_and_saves_nothing(admin_client, app, data, message):
    before, audit_before = _count_users(app), len(_audit(app))
    response = _create(admin_client, **data)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert message in html
    assert "The user was not created" in html
    assert NEW_PASSWORD not in html
    assert _count_users(app) == before
    assert len(_audit(app)) == audit_before


def test_change_role(admin_client, app):
    user(app, "bob", "operator")
    bob = _user(app, "bob")
    response = _post(admin_client, f"/admin/users/{bob.id}/role", {"role": "helpdesk"})
    assert response.status_code == 303
    assert "bob is now helpdesk." in _flashes(admin_client)
    assert _user(app, "bob").role == "helpdesk"
    last = _audit(app)[-1]
    assert (last.action, last.target, last.details) == (
        "user.role_changed",
        "bob",
        {"from": "operator", "to": "helpdesk"},
    )


def test_unknown_role_is_refused_and_nothing_changes(admin_client, app):
    bob_id = user(app, "bob", "operator")
    response = _post(admin_client, f"/admin/users/{bob_id}/role", {"role": "root"})
    assert response.status_code == 303
    assert "Unknown role &#39;root&#39;" in _flashes(admin_client)
    assert _user(app, "bob").role == "operator"


def test_disable_signs_the_user_out_on_the_next_request(admin_client, app):
    bob_client = signed_in(app, "bob", "operator")
    assert bob_client.get("/").status_code == 200
    bob_id = _user(app, "bob").id
    response = _post(admin_client, f"/admin/users/{bob_id}/disable")
    assert response.status_code == 303
    assert "bob is disabled." in _flashes(admin_client)
    assert not _user(app, "bob").active
    page = bob_client.get("/")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    assert login(app.test_client(), "bob").status_code == 200  # refused: the form again


def test_enable_lets_the_user_back_in(admin_client, app):
    bob_id = user(app, "bob", "operator")
    _post(admin_client, f"/admin/users/{bob_id}/disable")
    response = _post(admin_client, f"/admin/users/{bob_id}/enable")
    assert response.status_code == 303
    assert "bob is enabled." in _flashes(admin_client)
    assert login(app.test_client(), "bob").status_code == 302
    actions = [r.action for r in _audit(app) if r.action.startswith("user.")]
    assert actions == ["user.disabled", "user.enabled"]


def test_reset_password_of_a_local_user(admin_client, app):
    bob_id = user(app, "bob", "operator")
    assert admin_client.get(f"/admin/users/{bob_id}/password").status_code == 200
    response = _post(
        admin_client,
        f"/admin/users/{bob_id}/password",
        {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert response.status_code == 303
    assert "Password of bob reset." in _flashes(admin_client)
    assert login(app.test_client(), "bob", PASSWORD).status_code == 200
    assert login(app.test_client(), "bob", NEW_PASSWORD).status_code == 302
    reset = [r for r in _audit(app) if r.action == "user.password_reset"]
    assert [(r.target, r.details) for r in reset] == [("bob", {})]


def test_a_password_reset_ends_the_users_sessions(admin_client, app):
    bob_client = signed_in(app, "bob", "operator")  # bob signed in before the reset
    assert bob_client.get("/").status_code == 200
    bob_id = _user(app, "bob").id
    _post(admin_client, f"/admin/users/{bob_id}/password", {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})  # fmt: skip

    page = bob_client.get("/")
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    assert admin_client.get("/").status_code == 200  # another account's session goes on
    assert login(bob_client, "bob", NEW_PASSWORD).status_code == 302
    assert bob_client.get("/").status_code == 200


def test_disabling_ends_the_users_sessions_for_good(admin_client, app):
    bob_client = signed_in(app, "bob", "operator")  # bob signed in before he was disabled
    assert bob_client.get("/").status_code == 200
    bob_id = _user(app, "bob").id
    _post(admin_client, f"/admin/users/{bob_id}/disable")
    _post(admin_client, f"/admin/users/{bob_id}/enable")

    page = bob_client.get("/")  # enabled again, but the old session stays ended
    assert page.status_code == 302 and "/login" in page.headers["Location"]
    assert login(bob_client, "bob").status_code == 302
    assert bob_client.get("/").status_code == 200


def test_sessions_from_before_session_epochs_still_work(app):
    """An account never disabled keeps the mark sessions had before epochs existed: upgrading
    signs nobody out. A disabled one gets another."""
    row = User(username="carol", password_hash="$argon2id$stand-in", session_epoch=0)
    key = hmac.new(str(app.config["SECRET_KEY"]).encode(), b"amsw session mark", hashlib.sha256)
    before = hmac.new(key.digest(), row.password_hash.encode(), hashlib.sha256).hexdigest()[:32]
    with app.app_context():
        assert row.session_mark() == before
        row.session_epoch = 1
        assert row.session_mark() != before


def test_an_admin_resetting_their_own_password_stays_signed_in(admin_client, app):
    other = app.test_client()
    login(other, "admin")  # the same admin in a second browser
    admin_id = _user(app, "admin").id
    _post(admin_client, f"/admin/users/{admin_id}/password", {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})  # fmt: skip

    assert admin_client.get("/").status_code == 200
    assert other.get("/").status_code == 302  # the other session ended


def test_short_reset_password_is_refused_and_the_old_one_still_works(admin_client, app):
    bob_id = user(app, "bob", "operator")
    response = _post(
        admin_client,
        f"/admin/users/{bob_id}/password",
        {"password": "tooshort", "confirm": "tooshort"},
    )
    assert response.status_code == 400
    assert "at least 12 characters" in response.get_data(as_text=True)
    assert login(app.test_client(), "bob", PASSWORD).status_code == 302


def test_directory_users_have_no_password_or_role_to_change_here(admin_client, app):
    with app.app_context():
        row = User(username="eve", role="operator", password_hash=DIRECTORY_HASH)
        db.session.add(row)
        db.session.commit()
        eve_id = row.id
    response = _post(
        admin_client,
        f"/admin/users/{eve_id}/password",
        {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert response.status_code == 303
    assert "reset it there" in _flashes(admin_client)
    _post(admin_client, f"/admin/users/{eve_id}/role", {"role": "admin"})
    assert "role comes from directory" in _flashes(admin_client)
    assert _user(app, "eve").password_hash == DIRECTORY_HASH
    assert _user(app, "eve").role == "operator"


@pytest.mark.parametrize(("action", "data"), [("disable", {}), ("role", {"role": "operator"})])
def test_an_admin_cannot_disable_or_demote_themselves(admin_client, app, action, data):
    user(app, "second-admin", "admin")  # not the last admin, so only the self rule applies
    me = _user(app, "admin")
    response = _post(admin_client, f"/admin/users/{me.id}/{action}", data)
    assert response.status_code == 303
    assert "You cannot" in (html := _flashes(admin_client)) and "your own account" in html
    again = _user(app, "admin")
    assert again.active and again.role == "admin"


@pytest.mark.parametrize("action", ["disable", "demote"])
def test_the_last_active_admin_cannot_be_disabled_or_demoted(ctx, action):
    """Over HTTP the acting admin is always another active admin, so this rule guards the service
    (races between two admins, future callers such as a CLI): a disabled admin does not count."""
    from app.admin import service
    from app.auth.cli import create_user

    boss = create_user("boss", PASSWORD, "admin")
    retired = create_user("retired", PASSWORD, "admin")
    retired.active = False
    actor = create_user("ops", PASSWORD, "operator")
    db.session.commit()
    with pytest.raises(service.AdminError, match="boss is the last active admin and cannot be"):
        if action == "disable":
            service.set_active(boss, False, actor)
        else:
            service.change_role(boss, "reviewer", actor)
    db.session.rollback()
    boss = db.session.get(User, boss.id)
    assert boss.active and boss.role == "admin"
    assert not db.session.scalars(select(AuditRecord)).all()


def test_one_of_two_admins_can_be_disabled_then_the_other_is_the_last(admin_client, app):
    other_id = user(app, "other-admin", "admin")
    assert _post(admin_client, f"/admin/users/{other_id}/disable").status_code == 303
    assert "other-admin is disabled." in _flashes(admin_client)
    assert not _user(app, "other-admin").active


def test_non_admins_are_refused_every_admin_route(app):
    bob_id = user(app, "bob", "operator")
    for role in ROLES:
        if role_allows(role, "manage_users"):
            continue
        client = signed_in(app, f"u-{role}", role)
        assert client.get("/admin/users").status_code == 403
        assert client.get("/admin/users/new").status_code == 403
        token = csrf_token(client, "/account/tokens")
        for path, data in [
            ("/admin/users/new", {"username": "x1", "role": "admin", "password": NEW_PASSWORD}),
            (f"/admin/users/{bob_id}/role", {"role": "admin"}),
            (f"/admin/users/{bob_id}/disable", {}),
            (f"/admin/users/{bob_id}/password", {"password": NEW_PASSWORD}),
        ]:
            assert client.post(path, data={**data, "csrf_token": token}).status_code == 403, path
    assert _user(app, "bob").role == "operator" and _user(app, "bob").active
    assert _user(app, "x1") is None


def test_changes_need_a_csrf_token(admin_client, app):
    bob_id = user(app, "bob", "operator")
    assert admin_client.post(f"/admin/users/{bob_id}/disable").status_code == 400
    assert _user(app, "bob").active


def test_audit_records_never_hold_a_password(admin_client, app):
    _create(admin_client, username="frank")
    frank_id = _user(app, "frank").id
    other = "another-long-password"
    _post(admin_client, f"/admin/users/{frank_id}/password", {"password": other, "confirm": other})
    _post(admin_client, f"/admin/users/{frank_id}/role", {"role": "reviewer"})
    _post(admin_client, f"/admin/users/{frank_id}/disable")
    rows = [r for r in _audit(app) if r.target == "frank"]
    assert [r.action for r in rows] == [
        "user.created",
        "user.password_reset",
        "user.role_changed",
        "user.disabled",
    ]
    assert all(r.actor_name == "admin" for r in rows)
    everything = json.dumps([[r.action, r.target, r.details] for r in _audit(app)])
    assert NEW_PASSWORD not in everything and other not in everything
    assert "password_hash" not in everything and "$argon2" not in everything
