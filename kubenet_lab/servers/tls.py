"""The lab's TLS certificate, and the server-side TLS context the built-in HTTP server uses on
HTTPS ports (RunHttp.tls_ports).

One self-signed certificate per lab, made once with the `openssl` command (no Python
dependency, and the tool every reader knows how to inspect it with) and kept as `tls.crt` and
`tls.key` (mode 0600), the names of a Kubernetes TLS Secret, in a directory the caller names (the
supervisor: the lab's state directory, which `down` removes). Its subject and SAN name the lab
(and localhost): the names clients use in a lab (my-nginx, my-nginx.default.svc.cluster.local,
a pod IP) change with every manifest while the certificate outlives reloads, so clients do as
with any self-signed nginx and skip verification (`curl -k`).
"""
from __future__ import annotations

import os
import shutil
import ssl
import subprocess
import tempfile

CERT_FILE = "tls.crt"
KEY_FILE = "tls.key"
DAYS = 3650
# How long a client may take to say its first byte and complete its handshake: one silent so long is dropped.
HANDSHAKE_TIMEOUT = 10.0


class CertificateError(Exception):
    pass


def paths(directory: str) -> tuple[str, str]:
    return os.path.join(directory, CERT_FILE), os.path.join(directory, KEY_FILE)


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """A TLS server context for HTTP/1.1 (ALPN says so, so no client tries h2)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def make_certificate(directory: str, name: str, openssl: str = "openssl") -> tuple[str, str]:
    """Write a fresh self-signed certificate for `name` (CN and DNS SAN, with localhost and
    127.0.0.1) and its P-256 key into `directory`, which must exist (it is never created: a lab
    whose state is gone gets no new files). Both appear at once, the key readable by root only."""
    if shutil.which(openssl) is None:
        raise CertificateError(f"the {openssl} command is missing (it makes the lab's TLS certificate): "
                               f"install the openssl package (./setup.sh does)")
    cert, key = paths(directory)
    tmp = tempfile.mkdtemp(prefix=".tls.", dir=directory)  # mode 0700: the key is never exposed
    try:
        tmp_cert, tmp_key = os.path.join(tmp, CERT_FILE), os.path.join(tmp, KEY_FILE)
        proc = subprocess.run(
            [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-days", str(DAYS), "-subj", f"/O=kubenet-lab/CN={name}",
             "-addext", f"subjectAltName=DNS:{name},DNS:localhost,IP:127.0.0.1",
             "-addext", "basicConstraints=critical,CA:FALSE",
             "-addext", "extendedKeyUsage=serverAuth",
             "-keyout", tmp_key, "-out", tmp_cert],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            raise CertificateError(f"openssl could not make the lab's certificate: {proc.stderr.strip()}")
        os.chmod(tmp_key, 0o600)
        os.chmod(tmp_cert, 0o644)
        os.replace(tmp_key, key)  # the key first: a certificate on disk always has its key
        os.replace(tmp_cert, cert)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return cert, key


# directory -> (the certificate file's identity, its context)
_contexts: dict[str, tuple[tuple[int, int], ssl.SSLContext]] = {}


def lab_context(directory: str, name: str) -> ssl.SSLContext:
    """The TLS context of the lab whose certificate lives in `directory`: the certificate there
    when it loads with its key, else a new one made there. Loaded once per process for as long
    as the file stays the same; openssl runs (some milliseconds) only when there is none."""
    cert, key = paths(directory)
    try:
        st = os.stat(cert)
        cached = _contexts.get(directory)
        if cached is not None and cached[0] == (st.st_ino, st.st_mtime_ns):
            return cached[1]
        ctx = server_context(cert, key)
    except (OSError, ssl.SSLError):  # none yet, or a broken one: make it
        try:
            ctx = server_context(*make_certificate(directory, name))
            st = os.stat(cert)
        except (OSError, ssl.SSLError) as e:
            raise CertificateError(f"cannot make the lab's TLS certificate in {directory}: {e}") from e
    _contexts[directory] = ((st.st_ino, st.st_mtime_ns), ctx)
    return ctx
