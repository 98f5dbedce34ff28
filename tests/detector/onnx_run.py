"""Run an ONNX model once on one thread and save its first output: ``python onnx_run.py MODEL INPUT.npy OUT.npy``
(or ``--matmul OUT.npy`` for the saturation probe of ``test_int8_without_vnni``).

A script of its own, not a pytest helper, because the test runs it in other processes: under
``qemu-x86_64 -cpu Haswell`` (an emulated x86 CPU without VNNI, whose int8 kernels saturate), under
``-cpu Nehalem`` (SSE4.2, whose int8 kernels are exact) and natively.
"""

from __future__ import annotations

import sys

import numpy as np
import onnxruntime as ort

#: The probe's inner dimension and weight columns: full-range int8 (127, -128) and 7-bit (64, -64).
PROBE_K = 64
PROBE_WEIGHTS = (127, -128, 64, -64)


def probe_model() -> bytes:
    """A MatMulInteger of uint8 by constant int8 weights: ONNX Runtime's u8×s8 GEMM, the kernel our int8
    convolutions run on."""
    from onnx import TensorProto, helper, numpy_helper

    weights = np.tile(np.array(PROBE_WEIGHTS, np.int8), (PROBE_K, 1))
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "w"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [None, PROBE_K])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [None, len(PROBE_WEIGHTS)])],
        [numpy_helper.from_array(weights, "w")],
    )
    return bytes(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString())


def run(model: str | bytes, feed: np.ndarray) -> np.ndarray:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: feed})[0])


def main(argv: list[str]) -> None:
    if argv[0] == "--matmul":
        np.save(argv[1], run(probe_model(), np.full((4, PROBE_K), 255, np.uint8)))
    else:
        np.save(argv[2], run(argv[0], np.load(argv[1])))


if __name__ == "__main__":
    main(sys.argv[1:])
