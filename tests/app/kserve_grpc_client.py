"""Run KServe's own gRPC client (kserve.InferenceGRPCClient) against a server; print what it got as JSON.

Runs in the separate venv devenv/kserve_client.py makes for it (kserve pins protobuf<7, the project
runs protobuf 7), so it imports nothing from this project.

    python kserve_grpc_client.py HOST:PORT MODEL_NAME
"""

from __future__ import annotations

import asyncio
import json
import sys

import grpc
import numpy as np
from kserve import InferenceGRPCClient, InferInput, InferRequest
from kserve.protocol.infer_type import RequestedOutput


async def main(target: str, model: str) -> dict[str, object]:
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
    found: dict[str, object] = {}
    async with InferenceGRPCClient(url=target, retries=0, timeout=30) as client:
        found["server_live"] = await client.is_server_live()
        found["server_ready"] = await client.is_server_ready()
        found["model_ready"] = await client.is_model_ready(model)
        for raw in (True, False):  # raw_input_contents, then typed contents (fp32_contents)
            infer_input = InferInput(name="input", shape=list(rows.shape), datatype="FP32")
            infer_input.set_data_from_numpy(rows, binary_data=raw)
            request = InferRequest(
                model_name=model,
                infer_inputs=[infer_input],
                request_id=f"kserve-{raw}",
                request_outputs=[RequestedOutput(name="probabilities"), RequestedOutput(name="label")],
            )
            response = await client.infer(request)
            found[f"infer_raw_{raw}"] = {
                "id": response.id,
                "model_name": response.model_name,
                "outputs": {o.name: o.as_numpy().tolist() for o in response.outputs},
                "datatypes": {o.name: o.datatype for o in response.outputs},
            }
        bad = InferInput(name="input", shape=[1, 4], datatype="INT64")
        bad.set_data_from_numpy(np.ones((1, 4), dtype=np.int64), binary_data=True)
        try:
            await client.infer(InferRequest(model_name=model, infer_inputs=[bad]))
        except grpc.aio.AioRpcError as exc:
            found["bad_datatype"] = {"code": exc.code().name, "details": exc.details()}
        try:
            await client.infer(InferRequest(model_name="nope", infer_inputs=[infer_input]))
        except grpc.aio.AioRpcError as exc:
            found["unknown_model"] = {"code": exc.code().name, "details": exc.details()}
    return found


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2]))))
