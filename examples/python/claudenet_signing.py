"""CNET-MSG-V1: the canonical encoding of a MACS message and its HMAC-SHA256
signature, with the Python standard library only (see docs/macs.md)."""
import hashlib
import hmac
import json
import time


def canonical_json(obj):
    """RFC 8785 canonical JSON for the common subset (objects, arrays,
    strings, integers, booleans, null): sorted keys, no whitespace."""
    def fix(v):
        if isinstance(v, float) and v.is_integer() and abs(v) < 2 ** 53:
            return int(v)
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v
    return json.dumps(fix(obj if obj is not None else {}), sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False)


def _field(text):
    data = text.encode("utf-8")
    return str(len(data)).encode() + b":" + data + b"\n"


def canonical_bytes(msg_id, sender, recipient, msg_type, subject, body, payload, priority,
                    created_at, ttl_seconds, correlation_id, reply_to, origin_node):
    """The bytes that are signed; numbers are enum values / whole seconds."""
    parts = [msg_id, sender, recipient, str(msg_type), subject, body, canonical_json(payload),
             str(priority), created_at, str(ttl_seconds), correlation_id, reply_to, origin_node]
    return b"CNET-MSG-V1\n" + b"".join(_field(p) for p in parts)


def sign(secret, data):
    return hmac.new(secret.encode("utf-8"), data, hashlib.sha256).hexdigest()


def rfc3339(seconds):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))
