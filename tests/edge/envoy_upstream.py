"""Envoy's own ext_authz messages, from upstream's .proto files rather than the subset in
proto/envoy/: a check written with them is what a real Envoy sends, field for field.

Upstream's API (envoy-api, with the xds, validate and googleapis files it imports) comes in
the npm package @grpc/grpc-js-xds, fetched once with `npm pack` into the build directory and
compiled by protoc into a descriptor set; its messages are built in a pool of their own, apart
from the generated modules of the subset.
"""

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

PACKAGE = "@grpc/grpc-js-xds@1.14.1"
PROTO = "envoy/service/auth/v3/external_auth.proto"
CHECK_METHOD = "/envoy.service.auth.v3.Authorization/Check"


def _cache_dir():
    build = Path(os.environ.get("POLICY_BUILD_DIR", Path(__file__).resolve().parents[2] / "build"))
    return build / "envoy-upstream" / PACKAGE.replace("/", "_")


def _descriptor_set():
    """The descriptor set of PROTO and its imports, made once per PACKAGE version; runs that
    share the build directory each work in a directory of their own and publish by rename."""
    cache = _cache_dir()
    out = cache / "external_auth.pb"
    if out.exists():
        return out.read_bytes()
    npm, protoc = shutil.which("npm"), shutil.which("protoc")
    if npm is None or protoc is None:
        raise RuntimeError("Envoy's upstream messages need npm and protoc on PATH")
    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=cache))
    try:
        packed = subprocess.run([npm, "pack", PACKAGE, "--json", "--pack-destination", str(work)],
                                capture_output=True, text=True, timeout=120, check=False)
        if packed.returncode != 0:
            raise RuntimeError(f"npm pack {PACKAGE} failed: {packed.stderr[-2000:]}")
        archive = work / json.loads(packed.stdout)[0]["filename"]
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers()
                       if m.isfile() and m.name.startswith("package/deps/")
                       and m.name.endswith(".proto") and ".." not in Path(m.name).parts]
            tar.extractall(work, members=members)
        deps = work / "package" / "deps"
        includes = [f"-I{deps / d}"
                    for d in ("envoy-api", "xds", "googleapis", "protoc-gen-validate")]
        compiled = subprocess.run(
            [protoc, *includes, "-I/usr/include", "--include_imports",
             f"--descriptor_set_out={work / 'external_auth.pb'}", PROTO],
            capture_output=True, text=True, timeout=60, check=False)
        if compiled.returncode != 0:
            raise RuntimeError(f"protoc {PROTO} failed: {compiled.stderr[-2000:]}")
        os.replace(work / "external_auth.pb", out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out.read_bytes()


class Messages:
    """CheckRequest, CheckResponse and the rest by their full names: messages["CheckRequest"]
    is envoy.service.auth.v3.CheckRequest."""

    def __init__(self):
        files = descriptor_pb2.FileDescriptorSet()
        files.ParseFromString(_descriptor_set())
        self._pool = descriptor_pool.DescriptorPool()
        for f in files.file:
            self._pool.Add(f)
        self._factory = message_factory.MessageFactory(self._pool)

    def __getitem__(self, name):
        full = name if "." in name else f"envoy.service.auth.v3.{name}"
        return self._factory.GetPrototype(self._pool.FindMessageTypeByName(full))

    def check(self, channel, request, timeout=10):
        """Envoy's Authorization/Check on `channel` with upstream's messages both ways."""
        call = channel.unary_unary(CHECK_METHOD,
                                   request_serializer=lambda m: m.SerializeToString(),
                                   response_deserializer=self["CheckResponse"].FromString)
        return call(request, timeout=timeout)
