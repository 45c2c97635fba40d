"""The one table of tensor datatypes: Open Inference Protocol name, onnxruntime type, numpy dtype."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Datatype:
    name: str  # the V2 protocol's datatype string
    ort_type: str  # onnxruntime's NodeArg.type
    dtype: np.dtype  # numpy dtype in the V2 binary wire byte order (little endian)


_ALL = (
    Datatype("BOOL", "tensor(bool)", np.dtype(np.bool_)),
    Datatype("UINT8", "tensor(uint8)", np.dtype("<u1")),
    Datatype("UINT16", "tensor(uint16)", np.dtype("<u2")),
    Datatype("UINT32", "tensor(uint32)", np.dtype("<u4")),
    Datatype("UINT64", "tensor(uint64)", np.dtype("<u8")),
    Datatype("INT8", "tensor(int8)", np.dtype("<i1")),
    Datatype("INT16", "tensor(int16)", np.dtype("<i2")),
    Datatype("INT32", "tensor(int32)", np.dtype("<i4")),
    Datatype("INT64", "tensor(int64)", np.dtype("<i8")),
    Datatype("FP16", "tensor(float16)", np.dtype("<f2")),
    Datatype("FP32", "tensor(float)", np.dtype("<f4")),
    Datatype("FP64", "tensor(double)", np.dtype("<f8")),
    Datatype("BYTES", "tensor(string)", np.dtype(object)),
)

BY_NAME: dict[str, Datatype] = {d.name: d for d in _ALL}
BY_ORT_TYPE: dict[str, Datatype] = {d.ort_type: d for d in _ALL}
