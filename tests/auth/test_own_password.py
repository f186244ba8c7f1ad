"""Issue 21, item 9: a user changes their own password (current one required, the admin reset's
rule, CSRF, audited), and their other sessions end."""

from sqlalchemy import select

from app.auth.ldap import DIRECTORY_HASH
from app.extensions import db
from app.models import AuditRecord, User
from tests.conftest import PASSWORD, csrf_token, login
from tests.handover.helpers import signed_in

URL = "/account/password"
NEW = "a-fresh-password-77"


def _change(client, current=PASSWORD, password=NEW, confirm=None, token=True):
    data = {"current": current, "password": password, "confirm": confirm or password}
    if token:
        data["csrf_token"] = csrf_token(client, URL)
    return client.post(URL, data=data)


def _actions(app) -> list[tuple[str, str]]:
    with app.app_context():
        rows = db.session.scalars(select(AuditRecord).order_by(AuditRecord.seq))
        return [(r.action, r.target) for r in rows]


def test_the_header_links_the_page(app):
    client = signed_in(app, "olivia", "operator")
    html = client.get("/").get_data(as_text=True)
    assert f'href="{URL}"' in html
    assert "Current password" in client.get(URL).get_data(as_text=True)


def test_a_wrong_current_password_is_refused_and_audited(app):
    client = signed_in(app, "olivia", "operator")
    response = _change(client, current="not-my-password")
    assert response.status_code == 400
    assert "This is not your current password." in response.get_data(as_text=True)
    assert ("user.password_change_refused", "olivia") in _actions(app)
    assert login(app.test_client(), "olivia").status_code == 302  # unchanged


def test_without_csrf_nothing_changes(app):
    client = signed_in(app, "olivia", "operator")
    response = _change(client, token=False)
    assert response.status_code == 400 and b"The CSRF token is missing." in response.data
    assert login(app.test_client(), "olivia", NEW).status_code != 302


def test_the_admin_reset_rules_apply(app):
    client = signed_in(app, "olivia", "operator")
    short = _change(client, password="short")
    assert short.status_code == 400 and "at least" in short.get_data(as_text=True)
    mismatch = _change(client, confirm=NEW + "x")
    assert "The new passwords do not match." in mismatch.get_data(as_text=True)
    same = _change(client, password=PASSWORD)
    assert "must differ from the current one" in same.get_data(as_text=True)


def test_a_change_keeps_this_session_and_ends_the_others(app):
    client = signed_in(app, "olivia", "operator")
    elsewhere = app.test_client()
    assert login(elsewhere, "olivia").status_code == 302
    assert elsewhere.get("/").status_code == 200

    response = _change(client)
    assert response.status_code == 302
    assert client.get("/").status_code == 200  # this session goes on
    assert elsewhere.get("/").status_code == 302  # the other one is signed out
    assert login(app.test_client(), "olivia", NEW).status_code == 302
    assert login(app.test_client(), "olivia", PASSWORD).status_code != 302
    actions = _actions(app)
    assert ("user.password_changed", "olivia") in actions
    with app.app_context():
        details = [r.details for r in db.session.scalars(select(AuditRecord))]
    assert NEW not in repr(details) and PASSWORD not in repr(details)


def test_a_directory_account_is_sent_to_the_directory(app):
    client = signed_in(app, "olivia", "operator")
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "olivia"))
        user.password_hash = DIRECTORY_HASH
        db.session.commit()
    # The session mark changed with the hash: sign in again is impossible locally, so check the
    # page through a fresh session of the same account as the directory would give it.
    with client.session_transaction() as session, app.app_context():
        user = db.session.scalar(select(User).where(User.username == "olivia"))
        session["_user_id"] = user.get_id()
    response = client.get(URL)
    assert response.status_code == 409
    assert "change your password there" in response.get_data(as_text=True)
