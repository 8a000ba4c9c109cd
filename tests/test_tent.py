"""TENT: what it adapts, its steps against a loop written from the paper, and its stream stage."""

import copy

import numpy as np
import pytest
import torch
from scipy.stats import entropy
from torch import nn

from sda_core.checkpoints import save_weights
from sda_core.jobs.per_image import per_image_job, stream_order
from sda_core.models.classifiers import Preprocess, create_classifier
from sda_core.store import read_predictions, write_store
from sda_core.tent import BATCH_NORM, LAYER_NORM, TentAdapter, TentSettings, configure_model, mean_entropy


@pytest.fixture
def resnet():
    torch.manual_seed(0)
    model = create_classifier("resnet10t", 5)
    for module in model.modules():  # stored statistics TENT must not use
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_mean_entropy_is_the_mean_shannon_entropy_of_the_softmax():
    logits = torch.randn(6, 5)
    expected = np.mean([entropy(row) for row in logits.softmax(1).numpy()])
    assert abs(float(mean_entropy(logits)) - expected) < 1e-6


def test_batch_norm_models_adapt_their_affines_on_test_batch_statistics(resnet):
    model, adapts = configure_model(copy.deepcopy(resnet))
    assert adapts == BATCH_NORM
    adapted = {name for name, p in model.named_parameters() if p.requires_grad}
    norms = {
        f"{module_name}.{leaf}"
        for module_name, module in model.named_modules()
        if isinstance(module, nn.BatchNorm2d)
        for leaf in ("weight", "bias")
    }
    assert adapted == norms
    x = torch.rand(4, 3, 16, 16)
    with torch.no_grad():
        stored, batch = resnet(x), model(x)
        train_mode = copy.deepcopy(resnet).train()(x)  # batch statistics everywhere
    assert not torch.allclose(stored, batch) and torch.allclose(batch, train_mode, atol=1e-5)
    assert all(m.running_mean is None for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_layer_norm_models_adapt_their_layer_norm_affines():
    model, adapts = configure_model(create_classifier("convnext_atto", 5))
    assert adapts == LAYER_NORM
    adapted = [name for name, p in model.named_parameters() if p.requires_grad]
    layer_norms = {
        f"{name}.{leaf}"
        for name, m in model.named_modules()
        if isinstance(m, nn.LayerNorm)
        for leaf in ("weight", "bias")
    }
    assert adapted and set(adapted) == layer_norms
    assert not model.training  # drop path, dropout: evaluation behaviour


def reference_tent(model, batches, lr, momentum):
    """TENT from the paper, written here: the whole model in training mode with batch norms on batch
    statistics only; SGD with momentum on the batch-norm affines; per batch, the outputs, then the step."""
    model = copy.deepcopy(model).train()
    parameters = []
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.track_running_stats, module.running_mean, module.running_var = False, None, None
            parameters += [module.weight, module.bias]
    velocity = [torch.zeros_like(p) for p in parameters]
    outputs = []
    for x in batches:
        logits = model(x)
        loss = -(logits.softmax(1) * logits.log_softmax(1)).sum(1).mean()
        gradients = torch.autograd.grad(loss, parameters)
        with torch.no_grad():
            for p, g, v in zip(parameters, gradients, velocity):
                v.mul_(momentum).add_(g)  # PyTorch's SGD momentum (dampening 0)
                p.sub_(lr * v)
        outputs.append(logits.detach().softmax(1))
    return outputs


def test_the_adapter_equals_the_papers_loop_and_resets_to_the_source(resnet):
    batches = [torch.rand(4, 3, 16, 16, generator=torch.Generator().manual_seed(k)) for k in range(3)]
    settings = TentSettings(lr=0.05, momentum=0.9)
    adapter = TentAdapter(configure_model(copy.deepcopy(resnet))[0], settings, Preprocess(16, 16))
    ours = [adapter.probabilities(x) for x in batches]
    preprocess = Preprocess(16, 16)
    theirs = reference_tent(resnet, [preprocess(x) for x in batches], 0.05, 0.9)
    for a, b in zip(ours, theirs):
        assert torch.allclose(a, b, atol=1e-5)
    assert not torch.allclose(ours[2], reference_tent(resnet, [preprocess(batches[2])], 0.05, 0.9)[0], atol=1e-4)
    adapter.reset()  # a new stream starts from the source weights and a fresh momentum
    assert all(torch.allclose(adapter.probabilities(x), b, atol=1e-5) for x, b in zip(batches, theirs))


def test_the_stream_stage_follows_its_seeded_order_and_stores_in_set_order(tmp_path, resnet):
    weights = tmp_path / "resnet.safetensors"
    save_weights(resnet, weights)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 16, 16, 3), dtype=np.uint8)
    write_store(tmp_path / "target.zarr", images, np.arange(10) % 5, 4, {})

    def tent(output, seed=0, num_shards=1):
        per_image_job(
            "tent",
            [str(tmp_path / "target.zarr")],
            str(output),
            weights={"classifier": str(weights)},
            model={"timm_name": "resnet10t", "timm_kwargs": {}},
            num_classes=5,
            settings={"lr": 0.05, "momentum": 0.9, "steps": 1},
            preprocess={"resize": 16, "crop": 16},
            images=None,
            batch_size=4,
            shard=0,
            num_shards=num_shards,
            stream="tent/test",
            seed=seed,
            device=torch.device("cpu"),
        )
        return read_predictions([output])

    probabilities, labels = tent(tmp_path / "tent.zarr")
    assert labels.tolist() == (np.arange(10) % 5).tolist()
    order = stream_order(10, 0, "tent/test")
    assert sorted(order) == list(range(10)) and order.tolist() != list(range(10))
    adapter = TentAdapter(configure_model(copy.deepcopy(resnet))[0], TentSettings(0.05, 0.9), Preprocess(16, 16))
    expected = np.empty((10, 5), np.float32)
    for first in range(0, 10, 4):  # batches of 4, the last of 2, in the stream's order
        members = order[first : first + 4]
        x = torch.from_numpy(images[members]).permute(0, 3, 1, 2).float() / 255
        expected[members] = adapter.probabilities(x).numpy()
    assert np.abs(probabilities.astype(np.float32) - expected).max() < 2e-3  # float16 rows
    other, _ = tent(tmp_path / "seed1.zarr", seed=1)  # another order: other batches, other statistics
    assert np.abs(other.astype(np.float32) - expected).max() > 1e-2
    with pytest.raises(ValueError, match="one shard, not 2"):
        tent(tmp_path / "two.zarr", num_shards=2)
