"""CloudFormation's side of a custom resource, locally: the Create request, and the response URL it waits on.

CloudFormation gives the function a pre-signed https URL and waits for the function to PUT its result there.
The runner serves that URL itself (PUT /_offline/cfn-response/<request id>), over TLS on its own port with a
certificate of its own that the custom resource's worker is told to trust, since the usual helpers (crhelper)
only ever speak https.
"""
from __future__ import annotations

import datetime
import ipaddress
import json
import shutil
import ssl
import tempfile
import threading
import uuid
from pathlib import Path
from typing import Any

from offline.template import ACCOUNT_ID, STACK_NAME, CustomResource, function_arn

RESPONSE_PREFIX = "/_offline/cfn-response/"


class CustomResourceFailed(RuntimeError):
    """A custom resource answered FAILED, or nothing, or garbage: the stack would roll back."""


def create_request(resource: CustomResource, response_url: str, request_id: str) -> dict[str, Any]:
    """The event CloudFormation sends a custom resource's function when the stack creates it."""
    token = function_arn(resource.function)
    stack_id = (f"arn:aws:cloudformation:us-east-1:{ACCOUNT_ID}:stack/{STACK_NAME}/"
                f"{uuid.uuid5(uuid.NAMESPACE_DNS, STACK_NAME)}")
    return {
        "RequestType": "Create",
        "ServiceToken": token,
        "ResponseURL": response_url,
        "StackId": stack_id,
        "RequestId": request_id,
        "LogicalResourceId": resource.name,
        "ResourceType": resource.type,
        "ResourceProperties": {**resource.properties, "ServiceToken": token},
    }


class Responses:
    """The response URLs handed out and what was PUT to each."""

    def __init__(self):
        self._lock = threading.Lock()
        self._waiting: dict[str, threading.Event] = {}
        self._received: dict[str, dict[str, Any]] = {}

    def expect(self, request_id: str) -> None:
        with self._lock:
            self._waiting[request_id] = threading.Event()

    def record(self, request_id: str, body: bytes) -> bool:
        """False for a request id nobody is waiting on."""
        try:
            response = json.loads(body)
        except ValueError:
            response = {"Status": "FAILED", "Reason": f"the response was not JSON: {body[:200]!r}"}
        if not isinstance(response, dict):
            response = {"Status": "FAILED", "Reason": f"the response was not a JSON object: {body[:200]!r}"}
        with self._lock:
            arrived = self._waiting.get(request_id)
            if arrived is None or arrived.is_set():
                return False
            self._received[request_id] = response
        arrived.set()
        return True

    def wait(self, request_id: str, timeout: float) -> dict[str, Any] | None:
        with self._lock:
            arrived = self._waiting[request_id]
        arrived.wait(timeout)
        with self._lock:
            return self._received.get(request_id)


class LocalCertificate:
    """A self-signed certificate for the runner's address, kept in a temporary folder while the runner lives."""

    def __init__(self, hosts: list[str]):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mini-crm offline runner")])
        names: list[x509.GeneralName] = []
        for host in dict.fromkeys(hosts):
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        now = datetime.datetime.now(datetime.timezone.utc)
        certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                       .serial_number(x509.random_serial_number())
                       .not_valid_before(now - datetime.timedelta(minutes=5))
                       .not_valid_after(now + datetime.timedelta(days=30))
                       .add_extension(x509.SubjectAlternativeName(names), critical=False)
                       .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                       .sign(key, hashes.SHA256()))
        self.folder = Path(tempfile.mkdtemp(prefix="offline-tls-"))
        self.cafile = self.folder / "cert.pem"
        self.keyfile = self.folder / "key.pem"
        self.cafile.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        self.keyfile.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cafile, self.keyfile)
        return context

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
