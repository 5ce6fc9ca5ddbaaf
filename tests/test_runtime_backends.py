"""Optional backends. The torch backend's loading, input and padding code runs on CPU; its
CUDA, fp16 and CUDA-graph paths need a GPU and are skipped without one. TensorRT needs an NVIDIA
GPU and is not tested (see test_runtime.py for its missing-library error)."""

from __future__ import annotations

import numpy as np
import pytest
from runtime_fixtures import catalog, rt_artifact, rt_ranker  # noqa: F401

from edgerank.runtime import BackendError, Ranker
from edgerank.runtime.backends.torch_cuda import SEQ_STEP, bucket_shape, pad_feeds

pytest.importorskip("torch")


def test_bucket_shapes_are_few_and_cover_the_batch():
    assert bucket_shape(1, 7, 128) == (1, SEQ_STEP)
    assert bucket_shape(5, 33, 128) == (8, 64)
    assert bucket_shape(32, 128, 128) == (32, 128)
    assert bucket_shape(3, 100, 100) == (4, 100)  # never past the artifact's max length
    shapes = {bucket_shape(b, s, 128) for b in range(1, 33) for s in range(1, 129)}
    assert len(shapes) <= 6 * (128 // SEQ_STEP)


def test_torch_backend_on_cpu_matches_onnxruntime(rt_artifact, rt_ranker):
    ranker = Ranker.load(rt_artifact, backend="torch-cuda", device="cpu", dtype="float32", cuda_graphs=False)
    assert ranker.describe()["backend"] == "torch-cuda"
    products = catalog(10) + [{"id": "long", "title": "drill " * 100}]
    a, b = ranker.rank("red drill", products), rt_ranker.rank("red drill", products)
    assert a.ids == b.ids
    np.testing.assert_allclose([i.relevance for i in a], [i.relevance for i in b], atol=1e-4)


def test_padding_to_a_graph_bucket_changes_no_score(rt_artifact):
    """CUDA graphs replay fixed shapes; padded rows and positions must not move real rows' scores."""
    ranker = Ranker.load(rt_artifact, backend="torch-cuda", device="cpu", dtype="float32", cuda_graphs=False)
    scorer = ranker._scorer
    enc = scorer.encoder.encode(["red drill"] * 5, [p["title"] for p in catalog(5)])
    feeds = scorer.encoder.pad(enc, np.arange(5))
    backend = scorer.backend
    plain = backend.run(feeds)
    padded = backend.run(pad_feeds(feeds, backend.input_names, bucket_shape(5, feeds["input_ids"].shape[1], 64)))
    np.testing.assert_allclose(padded[:5], plain, atol=1e-5)


def test_torch_backend_option_errors(rt_artifact, tmp_path):
    with pytest.raises(BackendError, match="CUDA graphs need a CUDA device"):
        Ranker.load(rt_artifact, backend="torch-cuda", device="cpu", dtype="float32")
    with pytest.raises(BackendError, match="has no config.json"):
        Ranker.load(rt_artifact, backend="torch-cuda", model_dir=str(tmp_path), device="cpu", cuda_graphs=False)
    with pytest.raises(BackendError, match="does not take threads"):
        Ranker.load(rt_artifact, backend="torch-cuda", threads=2)


def test_torch_backend_cuda_graphs_fp16(rt_artifact, rt_ranker):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device: the fp16 CUDA-graph path runs only on a GPU box")
    ranker = Ranker.load(rt_artifact, backend="torch-cuda")
    products = catalog(12)
    a, b = ranker.rank("red drill", products), rt_ranker.rank("red drill", products)
    np.testing.assert_allclose([i.relevance for i in a], [{j.id: j.relevance for j in b}[i.id] for i in a], atol=2e-2)
    assert ranker.describe()["cuda_graphs"]  # at least one shape was captured
