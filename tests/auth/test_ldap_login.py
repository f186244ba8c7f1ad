"""Directory sign-in against a real slapd on loopback: groups map to roles; local accounts still work."""

import pytest

from app.auth import ldap
from app.extensions import db
from app.models import AuditRecord, User
from tests.auth.slapd import ADMIN_DN, ADMIN_PASSWORD, SUFFIX, Slapd
from tests.conftest import login
from tests.handover.helpers import user

USERS = {
    "dana": "dana-pass",
    "hugo": "hugo-pass",
    "nobody": "nobody-pass",
    "admin": "dir-admin-pass",
}
GROUPS = {"ams-admins": ["dana", "admin"], "ams-helpdesk": ["hugo", "dana"]}


@pytest.fixture(scope="module")
def slapd(tmp_path_factory):
    server = Slapd(tmp_path_factory.mktemp("slapd"), USERS, GROUPS)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def directory(app, slapd, monkeypatch):
    settings = {
        "LDAP_URL": slapd.url,
        "LDAP_BIND_DN": ADMIN_DN,
        "LDAP_BIND_PASSWORD": ADMIN_PASSWORD,
        "LDAP_USER_BASE": f"ou=people,{SUFFIX}",
        "LDAP_USER_FILTER": "(uid={username})",
        "LDAP_GROUP_ROLE_MAP": f"cn=ams-admins,ou=groups,{SUFFIX}=admin;"
        f"cn=ams-helpdesk,ou=groups,{SUFFIX}=helpdesk",
    }
    for key, value in settings.items():
        monkeypatch.setitem(app.config, key, value)


def _role(app, username):
    with app.app_context():
        row = db.session.scalar(db.select(User).where(User.username == username))
        return row.role if row else None


@pytest.mark.parametrize(
    ("username", "password", "role"),
    [
        ("dana", "dana-pass", "admin"),
        ("hugo", "hugo-pass", "helpdesk"),
        ("nobody", "nobody-pass", None),
        ("hugo", "wrong", None),
        ("hugo", "", None),
        ("*", "hugo-pass", None),
    ],
)
def test_directory_users_sign_in_with_the_mapped_role(app, directory, username, password, role):
    client = app.test_client()
    response = login(client, username, password) if password else None
    signed_in = response is not None and response.status_code == 302
    assert signed_in is (role is not None)
    assert _role(app, username) == role


def test_local_accounts_stay_the_default_and_are_not_shadowed(app, directory):
    user(app, "admin", "reviewer")
    assert login(app.test_client(), "admin", "dir-admin-pass").status_code == 200  # refused
    assert login(app.test_client(), "admin").status_code == 302  # local password
    assert _role(app, "admin") == "reviewer"


def test_role_follows_the_directory_on_each_sign_in(app, directory, monkeypatch):
    login(app.test_client(), "dana", "dana-pass")
    assert _role(app, "dana") == "admin"
    monkeypatch.setitem(
        app.config, "LDAP_GROUP_ROLE_MAP", f"cn=ams-helpdesk,ou=groups,{SUFFIX}=helpdesk"
    )
    login(app.test_client(), "dana", "dana-pass")
    assert _role(app, "dana") == "helpdesk"
    with app.app_context():
        actions = db.session.scalars(db.select(AuditRecord.action)).all()
        assert actions.count("login.succeeded") == 2


def test_directory_down_does_not_break_local_login(app, monkeypatch):
    monkeypatch.setitem(app.config, "LDAP_URL", "ldap://127.0.0.1:9")
    monkeypatch.setitem(app.config, "LDAP_USER_BASE", f"ou=people,{SUFFIX}")
    user(app, "local", "operator")
    assert login(app.test_client(), "local").status_code == 302
    assert login(app.test_client(), "dana", "dana-pass").status_code == 200


def test_role_map_parsing():
    assert ldap.parse_role_map("CN=A, DC=x=admin; cn=b,dc=x=reviewer") == [
        ("cn=a,dc=x", "admin"),
        ("cn=b,dc=x", "reviewer"),
    ]
    with pytest.raises(ValueError):
        ldap.parse_role_map("cn=a,dc=x=root")
