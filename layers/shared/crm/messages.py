"""The queue message format: many records packed into one SQS message body."""
from __future__ import annotations

import json
from typing import Any

MESSAGE_VERSION = 1


def too_large(kind: str, records: list[dict[str, Any]], max_bytes: int) -> list[int]:
    """The positions of the records that would not fit in a message on their own."""
    room = max_bytes - len(_body(kind, []).encode())
    return [i for i, record in enumerate(records) if _record_bytes(record) > room]


def _record_bytes(record: dict[str, Any]) -> int:
    return len(json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode()) + 1


def pack(kind: str, records: list[dict[str, Any]], max_bytes: int, max_records: int | None = None) -> list[str]:
    """Message bodies of `{"kind", "v", "records": [...]}`, each at most max_bytes of UTF-8 and max_records."""
    envelope_bytes = len(_body(kind, []).encode())
    bodies: list[str] = []
    chunk: list[str] = []
    size = envelope_bytes
    for record in records:
        encoded = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
        record_bytes = len(encoded.encode()) + 1
        if record_bytes + envelope_bytes > max_bytes:
            raise ValueError(f"one {kind} record is larger than an SQS message")
        if chunk and (size + record_bytes > max_bytes or len(chunk) == max_records):
            bodies.append(_join(kind, chunk))
            chunk, size = [], envelope_bytes
        chunk.append(encoded)
        size += record_bytes
    if chunk:
        bodies.append(_join(kind, chunk))
    return bodies


def unpack(body: str) -> tuple[str, list[Any]]:
    message = json.loads(body)
    if not isinstance(message, dict) or not isinstance(message.get("records"), list):
        raise ValueError("message is not a record envelope")
    return message.get("kind", ""), message["records"]


def _body(kind: str, records: list[Any]) -> str:
    return json.dumps({"kind": kind, "v": MESSAGE_VERSION, "records": records}, separators=(",", ":"))


def _join(kind: str, encoded_records: list[str]) -> str:
    return f'{{"kind":{json.dumps(kind)},"v":{MESSAGE_VERSION},"records":[{",".join(encoded_records)}]}}'
