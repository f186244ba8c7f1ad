"""The deployment's internal CA certificates: validated on the way in (paste, upload, API),
stored as PEM data, shown as subject/expiry/fingerprint, and a warning wherever a node's
certificate is not validated."""

import io

import pytest

from app import validators
from app.extensions import db
from app.lab import certs
from app.models import Deployment
from tests.conftest import csrf_token
from tests.deployment_form import NODES, deployment_id


@pytest.fixture(scope="module")
def ca():
    return certs.make_ca("Corp Issuing CA")


def leaf_pem(ca, tmp_path, expired=False) -> str:
    cert, _key = certs.issue(ca, ["ams1.corp.example.test"], tmp_path, expired=expired)
    return cert.read_text()


def test_ca_certificate_is_kept_as_pem_and_summarised(ca):
    noisy = f"Exported from certmgr\r\n{ca.cert_pem}\r\ntrailing text"
    pem = validators.ca_bundle(noisy)
    assert pem.startswith("-----BEGIN CERTIFICATE-----") and "certmgr" not in pem
    (summary,) = validators.ca_bundle_summary(pem)
    assert summary["subject"] == "CN=Corp Issuing CA"
    assert len(summary["sha256"]) == 64


def test_two_cas_in_one_file(ca):
    other = certs.make_ca("Corp Root CA")
    pem = validators.ca_bundle(other.cert_pem + ca.cert_pem)
    assert [c["subject"] for c in validators.ca_bundle_summary(pem)] == [
        "CN=Corp Root CA",
        "CN=Corp Issuing CA",
    ]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda ca, tmp: "hello", "Not a PEM certificate file"),
        (lambda ca, tmp: b"\x00\x01binary DER", "Not a PEM certificate file"),
        (
            lambda ca, tmp: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            "cannot be read",
        ),
        (
            lambda ca, tmp: (
                ca.cert_pem + "-----BEGIN PRIVATE KEY-----\nAA\n-----END PRIVATE KEY-----"
            ),
            "private key",
        ),
        (lambda ca, tmp: leaf_pem(ca, tmp), "upload the certificate of CN=Corp Issuing CA"),
        (lambda ca, tmp: leaf_pem(ca, tmp, expired=True), "expired on"),
        (lambda ca, tmp: ca.cert_pem * 21, "At most 20"),
        (lambda ca, tmp: "x" * (validators.MAX_CA_BUNDLE + 1), "larger than"),
    ],
)
def test_bad_ca_files_are_refused_with_a_reason(ca, tmp_path, make, message):
    with pytest.raises(ValueError, match=message):
        validators.ca_bundle(make(ca, tmp_path))


def test_a_self_signed_listener_certificate_can_be_trusted_directly(tmp_path):
    """New-SelfSignedCertificate makes a certificate that is its own issuer: OpenSSL takes it
    as a trust anchor (tests/lab/test_https.py connects with one)."""
    from app.lab.auth import tls_context

    tls_context(tmp_path)
    pem = (tmp_path / "tls-cert.pem").read_text()
    assert validators.ca_bundle(pem).startswith("-----BEGIN CERTIFICATE-----")


def https_nodes(validate: bool) -> dict:
    data = dict(NODES)
    for i in range(2):
        data[f"nodes-{i}-transport"] = "https"
        data[f"nodes-{i}-port"] = str(55986 + i)
        if validate:
            data[f"nodes-{i}-cert_validation"] = "y"
    return data


def post_new(client, data):
    data = {**data, "csrf_token": csrf_token(client, "/deployments/new")}
    return client.post("/deployments/new", data=data, content_type="multipart/form-data")


def stored(app) -> Deployment:
    with app.app_context():
        deployment = db.session.get(Deployment, deployment_id(app))
        db.session.expunge(deployment)
        return deployment


def test_upload_stores_the_ca_and_the_edit_page_shows_it(admin_client, app, ca):
    upload = (io.BytesIO(ca.cert_pem.encode()), "corp-ca.cer")
    response = post_new(admin_client, https_nodes(True) | {"ca_file": upload})
    assert response.status_code == 302
    deployment = stored(app)
    assert validators.ca_bundle_summary(deployment.ca_bundle)[0]["subject"] == "CN=Corp Issuing CA"
    page = admin_client.get(f"/deployments/{deployment.id}/edit").get_data(as_text=True)
    fingerprint = validators.ca_bundle_summary(deployment.ca_bundle)[0]["sha256"]
    assert fingerprint in page and "valid until" in page
    assert "Certificate validation is off" not in page


def test_bad_upload_shows_the_reason_and_saves_nothing(admin_client, app, ca, tmp_path):
    upload = (io.BytesIO(leaf_pem(ca, tmp_path).encode()), "node.cer")
    response = post_new(admin_client, https_nodes(True) | {"ca_file": upload})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "node.cer: CN=ams1.corp.example.test is a server certificate" in html
    assert deployment_id(app) is None


def test_pasted_ca_then_cleared_on_edit(admin_client, app, ca):
    assert post_new(admin_client, https_nodes(True) | {"ca_bundle": ca.cert_pem}).status_code == 302
    dep = stored(app)
    assert dep.ca_bundle
    data = https_nodes(True) | {"ca_bundle": ""}
    data["csrf_token"] = csrf_token(admin_client, f"/deployments/{dep.id}/edit")
    assert admin_client.post(f"/deployments/{dep.id}/edit", data=data).status_code == 302
    assert stored(app).ca_bundle is None


def test_validation_off_is_warned_on_the_step_page_and_in_the_report(admin_client, app):
    assert post_new(admin_client, https_nodes(False)).status_code == 302
    dep = deployment_id(app)
    step = admin_client.get(f"/deployments/{dep}/steps/prerequisites").get_data(as_text=True)
    assert "Certificate validation is off for AMS1, AMS2" in step
    report = admin_client.get(f"/deployments/{dep}/report").get_data(as_text=True)
    assert "Not validated for AMS1, AMS2" in report


def test_validated_https_has_no_warning(admin_client, app, ca):
    assert post_new(admin_client, https_nodes(True) | {"ca_bundle": ca.cert_pem}).status_code == 302
    dep = deployment_id(app)
    step = admin_client.get(f"/deployments/{dep}/steps/prerequisites").get_data(as_text=True)
    assert "data-cert-warning" not in step
    report = admin_client.get(f"/deployments/{dep}/report").get_data(as_text=True)
    assert "Validated against the deployment's internal CA" in report
