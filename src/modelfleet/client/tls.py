"""What a client trusts when it talks to a server over TLS, and one line when it does not.

The CA bundle is the first of: the one given (`--ca-bundle`, `Fleet(ca_bundle=...)`), the
variables requests and OpenSSL read (`REQUESTS_CA_BUNDLE`, then `SSL_CERT_FILE` or
`SSL_CERT_DIR`), and otherwise certifi's public CAs (httpx's default). A workspace's own server
on this machine is trusted by the launcher instead (exactly the certificate it was started with).
"""

from __future__ import annotations

import os
import ssl
from pathlib import Path

from ..domain.errors import InvalidInput, ServerUnavailable

CA_VARIABLES = ("REQUESTS_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR")
HOW_TO_TRUST = "give the CA that issued it (fleet login --ca-bundle FILE, REQUESTS_CA_BUNDLE or SSL_CERT_FILE)"


def ca_source(ca_bundle: str | Path | None = None) -> tuple[str, str] | None:
    """(where it was named, the path) of the CA bundle to use, or None for the default CAs."""
    if ca_bundle:
        return "--ca-bundle", str(ca_bundle)
    for name in CA_VARIABLES:
        if os.environ.get(name):
            return name, os.environ[name]
    return None


def trust(ca_bundle: str | Path | None = None) -> ssl.SSLContext | bool:
    """The `verify` of an httpx client: a context holding the chosen CAs, or True for the default."""
    source = ca_source(ca_bundle)
    if source is None:
        return True
    where, path = source
    try:
        if Path(path).is_dir():
            return ssl.create_default_context(capath=path)
        return ssl.create_default_context(cafile=path)
    except FileNotFoundError:
        raise InvalidInput(f"{where}: {path}: no such file") from None
    except (ssl.SSLError, OSError) as e:
        raise InvalidInput(f"{where}: {path}: not a PEM CA bundle ({getattr(e, 'reason', None) or e})") from None


def _verification_failure(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def untrusted(exc: BaseException, url: str, ca_bundle: str | Path | None = None) -> ServerUnavailable | None:
    """The one line for a server whose certificate this client does not trust (with the CA bundle
    it was given), or None when `exc` is another failure."""
    failure = _verification_failure(exc)
    if failure is None:
        if "CERTIFICATE_VERIFY_FAILED" not in str(exc):
            return None
        reason = "certificate verify failed"
    else:
        reason = failure.verify_message or failure.reason or "certificate verify failed"
    source = ca_source(ca_bundle)
    trusted = f"the CAs in {source[1]} ({source[0]})" if source else "the public CAs (certifi)"
    return ServerUnavailable(f"the server at {url} presented a certificate that {trusted} do not vouch for "
                             f"({reason}): {HOW_TO_TRUST}")


__all__ = ["trust", "untrusted", "ca_source", "CA_VARIABLES"]
