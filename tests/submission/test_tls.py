"""The submission server's TLS: the operator's certificate, or a self-signed one made once
for MAILHAVEN_HOSTNAME; TLS 1.2 and later."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import smtplib
import ssl
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mailhaven.config import Settings
from mailhaven.submission.tls import (
    SELF_SIGNED_FILE,
    TlsSetupError,
    _make_pair,
    fingerprint,
    server_context,
)
from tests.submission.conftest import RunningSubmission, on_loopback


def _certificate(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificates(pem)[0]


def test_a_self_signed_pair_is_made_once_for_the_hostname_and_logged(tmp_path,
                                                                     caplog) -> None:
    settings = Settings(data_dir=tmp_path / "var", hostname="mx.example.test")
    with caplog.at_level(logging.INFO, logger="mailhaven.submission"):
        server_context(settings)
        server_context(settings)  # the second start finds it
    [record] = [r for r in caplog.records if "smtp-tls" in r.getMessage()]
    path = settings.data_dir / SELF_SIGNED_FILE
    certificate = _certificate(path.read_bytes())
    assert fingerprint(certificate.public_bytes(Encoding.DER)) in record.getMessage()
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["mx.example.test"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it holds the private key
    assert sorted(p.name for p in settings.data_dir.iterdir()) == [SELF_SIGNED_FILE]


def test_a_hostname_that_is_an_address_is_named_as_one(tmp_path) -> None:
    pem, _ = _make_pair("192.0.2.25")
    names = _certificate(pem).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert names.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("192.0.2.25")]


def test_clients_verify_the_server_and_speak_tls_1_2_or_later(submission) -> None:
    assert server_context(submission.services.settings).minimum_version \
        == ssl.TLSVersion.TLSv1_2
    presented = _certificate(submission.cafile.read_bytes())
    for maximum in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.MAXIMUM_SUPPORTED):
        context = submission.context()
        context.maximum_version = maximum
        with smtplib.SMTP_SSL("127.0.0.1", submission.tls_port, timeout=60,
                              context=context) as client:
            tls = client.sock
            assert isinstance(tls, ssl.SSLSocket)
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            assert x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)) \
                == presented
    with smtplib.SMTP("127.0.0.1", submission.port, timeout=60) as client, \
            pytest.raises(ssl.SSLCertVerificationError):
        client.starttls(context=ssl.create_default_context())  # it isn't a public CA's


def test_the_operator_s_certificate_is_used_when_configured(services, credential,
                                                            tmp_path) -> None:
    pem, _ = _make_pair("127.0.0.1")
    key, _, cert = pem.partition(b"-----END PRIVATE KEY-----\n")
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key + b"-----END PRIVATE KEY-----\n")
    configured = on_loopback(services)
    configured = dataclasses.replace(configured, settings=configured.settings.with_(
        tls_cert_file=tmp_path / "cert.pem", tls_key_file=tmp_path / "key.pem"))
    with RunningSubmission(configured) as submission, \
            smtplib.SMTP("127.0.0.1", submission.port, timeout=60) as client:
        client.starttls(context=ssl.create_default_context(cafile=str(tmp_path / "cert.pem")))
        assert x509.load_der_x509_certificate(client.sock.getpeercert(binary_form=True)) \
            == _certificate(cert)
    assert not (services.settings.data_dir / SELF_SIGNED_FILE).exists()


def test_half_a_configuration_or_an_unusable_file_is_refused(tmp_path) -> None:
    with pytest.raises(TlsSetupError, match="Set both MAILHAVEN_TLS_CERT_FILE and"):
        server_context(Settings(data_dir=tmp_path, tls_cert_file=tmp_path / "cert.pem"))
    with pytest.raises(TlsSetupError, match="MAILHAVEN_TLS_CERT_FILE .* can't be used"):
        server_context(Settings(data_dir=tmp_path, tls_cert_file=tmp_path / "cert.pem",
                                tls_key_file=tmp_path / "key.pem"))
