"""Test PKI for the control plane, made with the openssl CLI (no `cryptography` in the venv)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

VALID_DAYS = 2
# The webhook cert rotators (open-policy-agent cert-controller) replace a CA or serving
# cert that expires within 90 days with a DNS-only one that a `url:` webhook cannot verify.
WEBHOOK_VALID_DAYS = 365


@dataclass(frozen=True)
class KeyPair:
    cert: Path
    key: Path


@dataclass(frozen=True)
class ClusterPki:
    """Everything the API server, controller manager and admin client need."""

    ca: KeyPair
    serving: KeyPair
    admin: KeyPair
    service_account_key: Path
    service_account_public_key: Path


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {result.stderr.strip()}")


def _new_key(path: Path) -> None:
    curve = "ec_paramgen_curve:P-256"
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", curve, "-out", str(path))


@dataclass(frozen=True)
class WebhookPki:
    """A CA and one serving cert for every controller's admission webhook on 127.0.0.1."""

    ca: KeyPair
    serving: KeyPair


def _make_ca(pki_dir: Path) -> KeyPair:
    ca = KeyPair(cert=pki_dir / "ca.crt", key=pki_dir / "ca.key")
    _new_key(ca.key)
    _openssl(
        "req", "-x509", "-new", "-key", str(ca.key), "-out", str(ca.cert),
        "-days", str(VALID_DAYS), "-subj", "/CN=rloop-test-ca",
    )  # fmt: skip
    return ca


def _sign(ca: KeyPair, pki_dir: Path, name: str, subject: str, extensions: list[str]) -> KeyPair:
    pair = KeyPair(cert=pki_dir / f"{name}.crt", key=pki_dir / f"{name}.key")
    csr = pki_dir / f"{name}.csr"
    extfile = pki_dir / f"{name}.ext"
    _new_key(pair.key)
    _openssl("req", "-new", "-key", str(pair.key), "-out", str(csr), "-subj", subject)
    extfile.write_text("\n".join(["basicConstraints = critical, CA:FALSE", *extensions]) + "\n")
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-CAcreateserial", "-out", str(pair.cert), "-days", str(VALID_DAYS),
        "-extfile", str(extfile),
    )  # fmt: skip
    return pair


def make_cluster_pki(pki_dir: Path, service_ip: str) -> ClusterPki:
    """A CA, the API server's serving cert, an admin client cert and the SA signing keys."""
    pki_dir.mkdir(parents=True, exist_ok=True)
    ca = _make_ca(pki_dir)
    serving = _sign(
        ca, pki_dir, "apiserver", "/CN=kube-apiserver",
        [
            "keyUsage = critical, digitalSignature, keyEncipherment",
            "extendedKeyUsage = serverAuth",
            "subjectAltName = IP:127.0.0.1, IP:" + service_ip + ", DNS:localhost, "
            "DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc",
        ],
    )  # fmt: skip
    # Group system:masters is bound to cluster-admin by the API server's bootstrap policy.
    admin = _sign(
        ca, pki_dir, "admin", "/O=system:masters/CN=rloop-test-admin",
        ["keyUsage = critical, digitalSignature, keyEncipherment", "extendedKeyUsage = clientAuth"],
    )  # fmt: skip
    sa_key = pki_dir / "service-account.key"
    sa_pub = pki_dir / "service-account.pub"
    _new_key(sa_key)
    _openssl("pkey", "-in", str(sa_key), "-pubout", "-out", str(sa_pub))
    return ClusterPki(
        ca=ca,
        serving=serving,
        admin=admin,
        service_account_key=sa_key,
        service_account_public_key=sa_pub,
    )


def make_webhook_pki(pki_dir: Path, ca_names: list[str], service_names: list[str]) -> WebhookPki:
    """RSA keys in PKCS#1 (what cert-controller parses), valid for `WEBHOOK_VALID_DAYS`.

    cert-controller checks a CA by verifying it for its CA name and the serving cert for the
    webhook Service's DNS name, so the CA carries every rotator's `ca_names` and the serving
    cert every `service_names` besides the IP the API server dials.
    """
    pki_dir.mkdir(parents=True, exist_ok=True)
    ca = KeyPair(cert=pki_dir / "webhook-ca.crt", key=pki_dir / "webhook-ca.key")
    _openssl("genrsa", "-traditional", "-out", str(ca.key), "2048")
    _openssl(
        "req", "-x509", "-new", "-key", str(ca.key), "-out", str(ca.cert),
        "-days", str(WEBHOOK_VALID_DAYS), "-subj", "/O=rloop-test/CN=rloop-webhook-ca",
        "-addext", "basicConstraints = critical, CA:TRUE",
        "-addext", "keyUsage = critical, digitalSignature, keyEncipherment, keyCertSign",
        "-addext", "subjectAltName = " + ", ".join(f"DNS:{name}" for name in ca_names),
    )  # fmt: skip
    serving = KeyPair(cert=pki_dir / "webhook.crt", key=pki_dir / "webhook.key")
    csr = pki_dir / "webhook.csr"
    extfile = pki_dir / "webhook.ext"
    _openssl("genrsa", "-traditional", "-out", str(serving.key), "2048")
    _openssl("req", "-new", "-key", str(serving.key), "-out", str(csr), "-subj", "/CN=webhook")
    sans = ", ".join(["IP:127.0.0.1", *(f"DNS:{name}" for name in service_names)])
    extfile.write_text(
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth\n"
        f"subjectAltName = {sans}\n"
    )
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca.cert), "-CAkey", str(ca.key),
        "-CAcreateserial", "-out", str(serving.cert), "-days", str(WEBHOOK_VALID_DAYS),
        "-extfile", str(extfile),
    )  # fmt: skip
    return WebhookPki(ca=ca, serving=serving)
