"""The cloud witness access key follows the rule of the other step secret (the license key), and
the vault can forget one step's secrets while keeping the rest (tests/e2e runs the real wipe)."""

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from app import validators
from app.deployments.service import create_deployment
from app.execution import vault
from app.extensions import db
from app.guides.cluster.quorum import STEP, QuorumForm
from app.models import Credential, User


@pytest.mark.parametrize(
    "char", ["\x00", "\u202e", "\x1b", "\u200b"], ids=["nul", "bidi", "escape", "zero-width"]
)
def test_bad_access_keys_are_refused_like_a_license_key(char):
    value = f"key-{char}-" + "k" * 20
    with pytest.raises(ValueError, match="Storage account access key contains"):
        validators.access_key(value)
    with pytest.raises(ValueError, match="License key contains"):
        validators.license_key(value)


def test_an_over_long_access_key_is_refused():
    with pytest.raises(ValueError, match="too long"):
        validators.access_key("k" * 513)


def test_a_pasted_key_is_kept_exactly_but_for_surrounding_spaces():
    key = "k'e;y$(Stop-Computer)`\"%PATH%{0}=="
    assert validators.access_key(f"  {key}\n") == key


def test_the_form_says_the_key_is_wiped_once_the_step_succeeds(app):
    with app.test_request_context():
        form = QuorumForm(formdata=MultiDict({"witness_type": "cloud"}), meta={"csrf": False})
    assert "wiped" in form.cloud_access_key.description
    assert STEP.wipe_on_success == ("cloud_access_key",)
    assert set(STEP.wipe_on_success) <= set(STEP.secret_fields)


def _deployment() -> int:
    owner = User(username="owner", role="admin", password_hash="!ldap")
    db.session.add(owner)
    db.session.commit()
    nodes = [
        {"name": f"N{i}", "host": f"10.0.0.{i}", "port": 5985, "transport": "http"}
        | {"auth": "ntlm", "cert_validation": True}
        for i in (1, 2)
    ]
    data = {"name": "Vault", "domain_fqdn": "corp.example.test", "nodes": nodes}
    return create_deployment(data, owner).id


def _expiry(deployment_id: int):
    row = db.session.scalar(select(Credential).where(Credential.deployment_id == deployment_id))
    return row.expires_at


def test_forget_drops_only_the_named_secrets_and_keeps_the_expiry(ctx):
    deployment_id = _deployment()
    vault.store_credentials(deployment_id, "CORP\\op", "Passw0rd!")
    vault.merge_secrets(deployment_id, {"cloud_access_key": "AKEY", "license_key": "LIC"})
    expires = _expiry(deployment_id)
    vault.forget(deployment_id, ("cloud_access_key",))
    db.session.expire_all()
    user, held = vault.load_secrets(deployment_id)
    assert user == "CORP\\op"
    assert held == {vault.WINRM_PASSWORD: "Passw0rd!", "license_key": "LIC"}
    assert _expiry(deployment_id) == expires
