"""Validators, table-driven, including hostile values: each gives a clear error or is kept literally."""

import pytest

from app import validators as v

HOSTILE = [
    "a'b",
    'a"b',
    "a;b",
    "$(Remove-Item C:\\ -Recurse)",
    "`whoami`",
    "line1\nline2",
    "nul\x00byte",
    "\u0410\u041cS1",  # Cyrillic A and M look like AMS1
    "ams\u200b1",  # zero-width space
    "x" * 10_000,
]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("ams1", "AMS1"), ("AMS-NODE-01", "AMS-NODE-01"), (" node2 ", "NODE2"), ("A", "A")],
)
def test_netbios_accepts(raw, expected):
    assert v.netbios_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "required"),
        ("ABCDEFGHIJKLMNOP", "15"),
        ("-ams", "hyphen"),
        ("ams-", "hyphen"),
        ("ams_1", "letters, digits and hyphens"),
        ("ams.1", "letters, digits and hyphens"),
        ("12345", "all digits"),
        ("\u0410\u041cS1", "non-ASCII"),
    ],
)
def test_netbios_rejects(raw, message):
    with pytest.raises(ValueError, match=message):
        v.netbios_name(raw)


@pytest.mark.parametrize("raw", HOSTILE)
@pytest.mark.parametrize(
    "check",
    [
        v.netbios_name,
        v.domain_fqdn,
        v.hostname,
        v.static_address,
        v.gmsa,
        v.unc_path,
        v.ams_version,
    ],
)
def test_hostile_values_are_refused_with_a_message(check, raw):
    with pytest.raises(ValueError) as info:
        check(raw)
    assert str(info.value)
    assert len(str(info.value)) < 400


@pytest.mark.parametrize("raw", HOSTILE)
def test_free_text_keeps_printable_hostile_values_literally(raw):
    try:
        value = v.plain_text(raw, "Name", 200)
    except ValueError as error:
        words = ("too long", "control or invisible", "control character", "bidirectional")
        assert any(w in str(error) for w in words)
    else:
        assert value == raw.strip()


def test_node_names_need_two_distinct():
    assert v.node_names(["a1", "a2"]) == ["A1", "A2"]
    with pytest.raises(ValueError, match="at least 2"):
        v.node_names(["a1"])
    with pytest.raises(ValueError, match="more than once"):
        v.node_names(["a1", "A1"])


@pytest.mark.parametrize(
    ("raw", "ok"),
    [
        ("10.0.0.50", True),
        ("fd00::50", True),
        ("2001:db8::1", True),
        ("10.0.0.256", False),
        ("224.0.0.1", False),
        ("127.0.0.1", False),
        ("0.0.0.0", False),
        ("ams1", False),
    ],
)
def test_static_address(raw, ok):
    if ok:
        assert v.static_address(raw) == raw
    else:
        with pytest.raises(ValueError):
            v.static_address(raw)


def test_static_address_must_differ_from_nodes():
    with pytest.raises(ValueError, match="already used by a node"):
        v.static_address("10.0.0.11", taken={"10.0.0.11"})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("corp\\svc-ams$", "CORP\\svc-ams$"),
        ("CORP.EXAMPLE.COM\\gmsa1$", "CORP.EXAMPLE.COM\\gmsa1$"),
    ],
)
def test_gmsa_accepts(raw, expected):
    assert v.gmsa(raw) == expected


@pytest.mark.parametrize(
    "raw", ["svc-ams$", "CORP\\svc-ams", "CORP\\averyveryverylongname$", "CORP/svc$", "CORP\\a b$"]
)
def test_gmsa_rejects(raw):
    with pytest.raises(ValueError, match="DOMAIN"):
        v.gmsa(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("Server=.\\SQLEXPRESS;Database=AccessManager", "Express"),
        ("Server=sql1\\SQLEXPRESS;Database=AccessManager", "Express"),
        ("Data Source=(localdb)\\MSSQLLocalDB;Initial Catalog=AccessManager", "LocalDB"),
        ("Server=localhost\\AMS;Database=AccessManager", "local Express"),
        ("Server=localhost;Database=AccessManager", "local server"),
        ("Database=AccessManager", "no Server"),
        ("Server=sql1;Database=AccessManager;Password=hunter2", "Remove the password"),
        ("Server=sql1;garbage", "keyword=value"),
    ],
)
def test_sql_connection_string_rejects(raw, message):
    with pytest.raises(ValueError, match=message):
        v.sql_connection_string(raw)


def test_sql_connection_string_accepts_a_shared_server():
    value = "Server=sql01.corp.example.com;Database=AccessManager;Integrated Security=true"
    assert v.sql_connection_string(value) == value
    assert v.parse_connection_string(value)["database"] == "AccessManager"


@pytest.mark.parametrize("raw", ["\\\\fs1\\witness", "\\\\fs1.corp.example.com\\quorum\\ams"])
def test_unc_accepts(raw):
    assert v.unc_path(raw) == raw


@pytest.mark.parametrize("raw", ["C:\\witness", "\\\\fs1", "//fs1/witness", "\\\\fs1\\wit:ness"])
def test_unc_rejects(raw):
    with pytest.raises(ValueError, match="UNC"):
        v.unc_path(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("2.1.1069", "2.1.1069.0"), ("3.0.1638.0", "3.0.1638.0"), ("1.0.7000.0", "1.0.7000.0")],
)
def test_version(raw, expected):
    assert v.ams_version(raw) == expected


@pytest.mark.parametrize("raw", ["2.1", "v2.1.1069", "2.1.1069.0.1", "latest"])
def test_version_rejects(raw):
    with pytest.raises(ValueError, match=r"Major\.Minor\.Build"):
        v.ams_version(raw)


def test_license_key_required():
    with pytest.raises(ValueError, match="required"):
        v.license_key("  ")
    assert v.license_key("ABCD-EFGH-IJKL-MNOP-QRST") == "ABCD-EFGH-IJKL-MNOP-QRST"
