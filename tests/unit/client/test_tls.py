"""Which CA bundle a remote client trusts, and the one line for a bad one (pure: no server)."""

from __future__ import annotations

import ssl

import pytest

from modelfleet.client import tls
from modelfleet.domain.errors import InvalidInput

from ...tls_ca import mint


@pytest.fixture
def clean_env(monkeypatch):
    for name in tls.CA_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_the_bundle_given_wins_then_requests_then_openssl_variables(clean_env, tmp_path):
    assert tls.ca_source() is None and tls.trust() is True   # httpx's default: certifi
    clean_env.setenv("SSL_CERT_FILE", "/b.pem")
    assert tls.ca_source() == ("SSL_CERT_FILE", "/b.pem")
    clean_env.setenv("REQUESTS_CA_BUNDLE", "/a.pem")
    assert tls.ca_source() == ("REQUESTS_CA_BUNDLE", "/a.pem")
    assert tls.ca_source(tmp_path / "c.pem") == ("--ca-bundle", str(tmp_path / "c.pem"))
    ca = mint(tmp_path / "ca", ["127.0.0.1"])
    assert isinstance(tls.trust(ca.ca_cert), ssl.SSLContext)


def test_a_missing_or_broken_bundle_is_one_line_naming_where_it_came_from(clean_env, tmp_path):
    clean_env.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "nope.pem"))
    with pytest.raises(InvalidInput, match=r"^REQUESTS_CA_BUNDLE: .*nope.pem: no such file$"):
        tls.trust()
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    with pytest.raises(InvalidInput, match=r"^--ca-bundle: .*junk.pem: not a PEM CA bundle"):
        tls.trust(tmp_path / "junk.pem")


def test_a_verification_failure_becomes_one_line_and_other_failures_do_not(clean_env):
    failure = ssl.SSLCertVerificationError(1, "certificate verify failed")
    failure.verify_message = "self-signed certificate"
    wrapped = ConnectionError("connect failed")
    wrapped.__cause__ = failure
    err = tls.untrusted(wrapped, "https://10.0.0.1:8443", "/etc/fleet/ca.pem")
    assert err is not None and "\n" not in str(err)
    assert str(err).startswith("the server at https://10.0.0.1:8443 presented a certificate that the CAs in "
                               "/etc/fleet/ca.pem (--ca-bundle) do not vouch for (self-signed certificate)")
    assert tls.untrusted(ConnectionRefusedError("refused"), "https://10.0.0.1:8443") is None
