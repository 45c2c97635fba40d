"""The committed gRPC stubs: regenerated from the .proto they are the same bytes, and the .proto's
wire format (every message field's name, number, type and label; every method's types) is the one
compiled into tritonclient, an independent, maintained build of the protocol.

Both run in subprocesses: our stubs and tritonclient's register the same `inference.*` message names,
and one process's default descriptor pool can hold only one of them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

_DUMP = """
import json, sys, importlib
from google.protobuf.descriptor import FieldDescriptor
module = importlib.import_module(sys.argv[1])
pool_file = module.DESCRIPTOR
messages = {}
def walk(descriptor):
    messages[descriptor.full_name] = {
        field.name: [
            field.number, field.type, field.is_repeated, field.message_type and field.message_type.full_name
        ]
        for field in descriptor.fields
    }
    for nested in descriptor.nested_types:
        walk(nested)
for descriptor in pool_file.message_types_by_name.values():
    walk(descriptor)
service = pool_file.services_by_name["GRPCInferenceService"]
methods = {m.name: [m.input_type.full_name, m.output_type.full_name] for m in service.methods}
dumped = {"package": pool_file.package, "service": service.full_name, "messages": messages, "methods": methods}
print(json.dumps(dumped))
"""


def dump(module: str) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, "-c", _DUMP, module], cwd=REPO, capture_output=True, text=True, check=True, timeout=120
    )
    return json.loads(result.stdout)


def test_regenerating_the_stubs_gives_the_committed_bytes(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "app.oip_grpc.generate", "--out", str(tmp_path)],
        cwd=REPO, check=True, capture_output=True, timeout=120,
    )
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    assert [str(p) for p in generated] == [
        "app/oip_grpc/protocol/open_inference_grpc_pb2.py",
        "app/oip_grpc/protocol/open_inference_grpc_pb2.pyi",
        "app/oip_grpc/protocol/open_inference_grpc_pb2_grpc.py",
    ]
    for path in generated:
        assert (tmp_path / path).read_bytes() == (REPO / path).read_bytes(), (
            f"{path} is stale: run `python -m app.oip_grpc.generate` and commit the result"
        )


def test_the_protocol_matches_the_one_compiled_into_tritonclient() -> None:
    ours = dump("app.oip_grpc.protocol.open_inference_grpc_pb2")
    triton = dump("tritonclient.grpc.service_pb2")
    assert ours["package"] == triton["package"] == "inference"
    assert ours["service"] == triton["service"] == "inference.GRPCInferenceService"
    # Triton's service is a superset (model repository, statistics, ...): ours must be inside it, equal.
    assert set(ours["methods"]) == {
        "ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata", "ModelInfer"
    }
    for method, types in ours["methods"].items():
        assert triton["methods"][method] == types, method
    assert len(ours["messages"]) >= 20
    for message, fields in ours["messages"].items():
        theirs = triton["messages"][message]
        for name, spec in fields.items():
            assert theirs.get(name) == spec, f"{message}.{name}: ours {spec}, tritonclient {theirs.get(name)}"
