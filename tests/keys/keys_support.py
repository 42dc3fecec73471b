"""Helpers for the keys service's process tests: starting keys, building requests, and the
text form of secrets (so tests can forge well-formed keys the service never issued).

Secret: prefix (psk_proj_ / psk_svc_ / psk_admin_) + 17 base62 key-id characters + 43 base62
secret characters + 6 base62 characters of the CRC-32 of everything before them.
"""

import datetime
import secrets as _secrets
import time

from tests.support import policy_testing as pt

from google.protobuf import duration_pb2, timestamp_pb2  # noqa: F401  (re-exported)
from policy.keys.v1 import keys_pb2, keys_pb2_grpc

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PREFIXES = {
    keys_pb2.KEY_KIND_PROJECT: "psk_proj_",
    keys_pb2.KEY_KIND_SERVICE_ACCOUNT: "psk_svc_",
    keys_pb2.KEY_KIND_ADMIN: "psk_admin_",
}
KEY_ID_CHARS, SECRET_CHARS, CHECKSUM_CHARS = 17, 43, 6
NOT_VALID = "API key is not valid"
DOMAIN = "keys.policy-suite"
MEMBER = keys_pb2.PRINCIPAL_TYPE_MEMBER
SERVICE_ACCOUNT = keys_pb2.PRINCIPAL_TYPE_SERVICE_ACCOUNT


# ---------------------------------------------------------------------------
# Processes.
# ---------------------------------------------------------------------------


def new_pepper():
    return _secrets.token_hex(32)  # 64 characters, comfortably >= 32 bytes


def keys_env(database_url=None, pepper=None):
    env = {"POLICY_KEYS_PEPPER": pepper or new_pepper()}
    if database_url is not None:
        env["POLICY_KEYS_DATABASE_URL"] = database_url
    return env


def start_keys(database_url, pepper, name="keys", **flags):
    """A running keys process on `database_url` (store=postgres unless flags say otherwise)."""
    if database_url is None:
        flags.setdefault("store", "memory")
    process = pt.ServiceProcess(pt.service_binary("keys"), flags=flags,
                                env=keys_env(database_url, pepper), name=name)
    return process.start()


def wait_serving(process, timeout=10):
    """Waits until `process` reports health SERVING; fails with a diagnosis and its log.

    Health that stays NOT_SERVING while the cache is in sync (policy_keys_cache_in_sync 1)
    is the server runner's start-up race: readiness flipped between the probe Start()
    applied and the one its health poller remembered, so no change is ever seen.
    """
    try:
        pt.wait_until(lambda: pt.health_status(process.channel) == "SERVING", timeout=timeout,
                      message=f"{process.name} health SERVING", ignore=(pt.grpc.RpcError,))
    except AssertionError as e:
        try:
            in_sync = pt.metric_value(pt.scrape_metrics(process.metrics_port),
                                      "policy_keys_cache_in_sync")
        except OSError:
            in_sync = None
        note = ""
        if in_sync == 1:
            note = ("\nhealth is stuck NOT_SERVING although policy_keys_cache_in_sync is 1 "
                    "(readiness changed between ServerRunner::Start's SetServing(probe()) and "
                    "PollHealth's first probe(), which then never sees a change)")
        raise AssertionError(f"{e}{note}\n{process.log_tail()}") from None
    return process


def run_keys(database_url, pepper, timeout=60, **flags):
    """keys run to completion (--bootstrap_admin, --migrate_only); CompletedProcess."""
    return pt.run_binary(pt.service_binary("keys"), flags=flags,
                         env=keys_env(database_url, pepper), timeout=timeout)


def stub(process_or_channel):
    channel = getattr(process_or_channel, "channel", process_or_channel)
    return keys_pb2_grpc.KeyServiceStub(channel)


def raw_verify(channel, payload, timeout=5):
    """VerifyKey with `payload` (bytes) as field 1, whatever it is: lets a test send a secret
    that is not UTF-8, which grpcio's typed stubs refuse to serialize."""
    call = channel.unary_unary("/policy.keys.v1.KeyService/VerifyKey",
                               request_serializer=lambda b: b,
                               response_deserializer=keys_pb2.VerifyKeyResponse.FromString)
    request = b"\n" + pt._encode_varint(len(payload)) + payload
    return call(request, timeout=timeout)


# ---------------------------------------------------------------------------
# Requests.
# ---------------------------------------------------------------------------


def principal(owner_id, type_=MEMBER):
    return keys_pb2.Principal(type=type_, id=owner_id)


def create_request(owner_id, project="proj-test", request_id="", kind=keys_pb2.KEY_KIND_PROJECT,
                   environment=keys_pb2.ENVIRONMENT_DEVELOPMENT, scopes=("chat.completions",),
                   owner_type=None, ttl_seconds=None, expire_time=None):
    if owner_type is None:
        owner_type = SERVICE_ACCOUNT if kind == keys_pb2.KEY_KIND_SERVICE_ACCOUNT else MEMBER
    request = keys_pb2.CreateKeyRequest(
        request_id=request_id, kind=kind, owner=principal(owner_id, owner_type),
        project="" if kind == keys_pb2.KEY_KIND_ADMIN else project, environment=environment,
        scopes=list(scopes))
    if ttl_seconds is not None:
        request.ttl.FromTimedelta(datetime.timedelta(seconds=ttl_seconds))
    if expire_time is not None:
        request.expire_time.CopyFrom(expire_time)
    return request


def timestamp_in(seconds):
    """A Timestamp `seconds` from now (negative: in the past)."""
    ts = timestamp_pb2.Timestamp()
    ts.FromNanoseconds(int((time.time() + seconds) * 1e9))
    return ts


def duration(seconds):
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(seconds * 1e9))
    return d


# ---------------------------------------------------------------------------
# The text form of secrets.
# ---------------------------------------------------------------------------


def base62(data, width):
    number = int.from_bytes(data, "big")
    out = []
    while len(out) < width:
        number, digit = divmod(number, 62)
        out.append(BASE62[digit])
    return "".join(reversed(out))


def crc32c(data):
    """CRC-32C (Castagnoli), bit by bit: slow and obviously right."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def checksum(body):
    return base62(crc32c(body.encode()).to_bytes(4, "big"), CHECKSUM_CHARS)


def split_secret(secret):
    """(prefix, key-id characters, secret characters, checksum)."""
    prefix = next(p for p in PREFIXES.values() if secret.startswith(p))
    rest = secret[len(prefix):]
    return (prefix, rest[:KEY_ID_CHARS], rest[KEY_ID_CHARS:KEY_ID_CHARS + SECRET_CHARS],
            rest[KEY_ID_CHARS + SECRET_CHARS:])


def assemble(prefix, key_id_chars, secret_chars):
    body = prefix + key_id_chars + secret_chars
    return body + checksum(body)


def random_chars(n):
    return "".join(_secrets.choice(BASE62) for _ in range(n))


def forge_secret(prefix="psk_proj_"):
    """A well-formed secret (valid checksum) for a key id nobody issued."""
    return assemble(prefix, random_chars(KEY_ID_CHARS), random_chars(SECRET_CHARS))


def tamper_secret(secret):
    """`secret` with one character of its secret part changed and the checksum fixed: the
    same key id, the wrong secret."""
    prefix, key_id, body, _ = split_secret(secret)
    flipped = "A" if body[10] != "A" else "B"
    return assemble(prefix, key_id, body[:10] + flipped + body[11:])


def key_id_of(secret):
    return "key_" + split_secret(secret)[1]
