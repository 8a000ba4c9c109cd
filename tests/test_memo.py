"""MEMO (sda_core.memo, a per-image stage of sda_core.jobs.per_image): the loss, the batch-norm prior, one
step against the plain nn.Module + torch.optim path, per-image independence, and the stage's sharding and resume."""

import copy

import numpy as np
import pytest
import torch
from torch import nn

import sda_core.memo as memo_module
from sda_core.augmix import augmix_views
from sda_core.checkpoints import save_weights
from sda_core.jobs.per_image import per_image_job
from sda_core.memo import MemoAdapter, MemoSettings, check_model, configure_model, marginal_entropy
from sda_core.models.classifiers import Preprocess, create_classifier
from sda_core.store import StoreSequence, read_predictions, write_store

PREPROCESS = Preprocess(resize=8, crop=8)


def _generators(seeds):
    return [torch.Generator().manual_seed(s) for s in seeds]


@pytest.fixture
def resnet():
    torch.manual_seed(0)
    model = create_classifier("resnet10t", 5)
    # non-trivial stored statistics, so the prior's mixing shows
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_marginal_entropy_is_the_entropy_of_the_mean_softmax():
    logits = torch.randn(6, 4, dtype=torch.float64) * 3
    mean = logits.softmax(1).mean(0)
    torch.testing.assert_close(marginal_entropy(logits), -(mean * mean.log()).sum())


def test_prior_mixes_stored_and_batch_statistics():
    torch.manual_seed(1)
    bn = nn.BatchNorm2d(3).eval()
    bn.running_mean.copy_(torch.tensor([0.5, -1.0, 2.0]))
    bn.running_var.copy_(torch.tensor([1.5, 0.5, 3.0]))
    bn.weight.data.uniform_(0.5, 1.5)
    bn.bias.data.uniform_(-1, 1)
    x = torch.randn(4, 3, 5, 5) * 2 + 1
    plain = bn(x)
    prior = 16 / 17
    configure_model(bn, prior)
    mean = prior * bn.running_mean + (1 - prior) * x.mean((0, 2, 3))
    var = prior * bn.running_var + (1 - prior) * x.var((0, 2, 3), unbiased=True)
    expected = (x - mean.view(1, 3, 1, 1)) / torch.sqrt(var.view(1, 3, 1, 1) + bn.eps)
    expected = expected * bn.weight.view(1, 3, 1, 1) + bn.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(bn(x), expected)
    assert not torch.allclose(bn(x), plain, atol=1e-3)
    configure_model(bn, 1.0)  # prior_strength None: the stored statistics alone
    torch.testing.assert_close(bn(x), plain)


@pytest.mark.parametrize(
    "settings",
    [
        MemoSettings(views=8, lr=0.05),
        MemoSettings(views=8, steps=2, optimizer="adamw", lr=1e-3, weight_decay=0.01, prior_strength=None),
        MemoSettings(views=8, steps=2, lr=0.05, momentum=0.9, weight_decay=1e-3),
    ],
)
def test_adaptation_equals_the_module_and_optimizer_path(resnet, settings):
    """The reference's path: a model copy, loss.backward, optimizer.step, then predict the plain image."""
    torch.manual_seed(2)
    images = torch.rand(2, 3, 8, 8)
    adapter = MemoAdapter(configure_model(copy.deepcopy(resnet), settings.prior), settings, PREPROCESS)
    ours = adapter.probabilities(images, _generators([3, 4]))
    for k, seed in enumerate([3, 4]):
        model = configure_model(copy.deepcopy(resnet), settings.prior)
        generator = _generators([seed])  # each step draws new views from the image's generator
        if settings.optimizer == "sgd":
            optimizer = torch.optim.SGD(
                model.parameters(), lr=settings.lr, momentum=settings.momentum, weight_decay=settings.weight_decay
            )
        else:
            optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
        for _ in range(settings.steps):
            views = augmix_views(images[k : k + 1], settings.views, 8, generator)
            optimizer.zero_grad()
            marginal_entropy(model(adapter.preprocess.normalise(views))).backward()
            optimizer.step()
        with torch.no_grad():
            expected = model(PREPROCESS(images[k : k + 1])).softmax(1)
        torch.testing.assert_close(ours[k : k + 1], expected, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        source = configure_model(copy.deepcopy(resnet), settings.prior)(PREPROCESS(images)).softmax(1)
    assert (ours - source).abs().max() > 1e-4  # the step changed the prediction


def test_images_are_adapted_independently_and_the_model_is_left_as_it_was(resnet):
    settings = MemoSettings(views=4, lr=0.1, optimizer="adamw")
    model = configure_model(resnet, settings.prior)
    before = copy.deepcopy(model.state_dict())
    adapter = MemoAdapter(model, settings, PREPROCESS)
    images = torch.rand(3, 3, 8, 8)
    together = adapter.probabilities(images, _generators([0, 1, 2]))
    alone = adapter.probabilities(images[2:], _generators([2]))
    torch.testing.assert_close(alone, together[2:], rtol=0, atol=0)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)
    torch.testing.assert_close(together.sum(1), torch.ones(3))


def test_unsupported_batch_norm_and_unconfigured_models_are_refused(resnet):
    from timm.layers import BatchNormAct2d

    with pytest.raises(NotImplementedError, match="BatchNormAct2d"):
        configure_model(nn.Sequential(nn.Conv2d(3, 4, 1), BatchNormAct2d(4)), 0.9)
    with pytest.raises(RuntimeError, match="configure_model"):
        check_model(resnet.train())
    with pytest.raises(ValueError, match="optimizer"):
        MemoSettings(optimizer="adam")


@pytest.fixture
def job_inputs(tmp_path, resnet):
    weights = tmp_path / "resnet.safetensors"
    save_weights(resnet, weights)
    rng = np.random.default_rng(0)
    store = tmp_path / "target.zarr"
    write_store(store, rng.integers(0, 256, (9, 8, 8, 3), dtype=np.uint8), np.arange(9) % 5, 4, {})
    return str(store), str(weights)


def _memo(job_inputs, output, shard, num_shards, images=None):
    store, weights = job_inputs
    per_image_job(
        "memo",
        [store],
        str(output),
        weights={"classifier": weights},
        model={"timm_name": "resnet10t", "timm_kwargs": {}},
        num_classes=5,
        settings={"views": 4, "lr": 0.05},
        preprocess={"resize": 8, "crop": 8},
        images=images,
        batch_size=2,
        shard=shard,
        num_shards=num_shards,
        stream="memo/test",
        seed=0,
        device=torch.device("cpu"),
    )


def test_memo_stage_does_not_depend_on_the_shard_count_and_spreads_a_limited_count(tmp_path, job_inputs):
    _memo(job_inputs, tmp_path / "one.zarr", 0, 1)
    for k in range(2):
        _memo(job_inputs, tmp_path / f"two-{k}.zarr", k, 2)
    one = read_predictions([tmp_path / "one.zarr"])
    two = read_predictions([tmp_path / f"two-{k}.zarr" for k in range(2)])
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], StoreSequence([job_inputs[0]]).read(0, 9)[1])
    assert one[0].dtype == np.float16 and one[0].shape == (9, 5)
    _memo(job_inputs, tmp_path / "five.zarr", 0, 1, images=5)  # evenly spaced over the set: 0, 1, 3, 5, 7
    five = read_predictions([tmp_path / "five.zarr"])
    np.testing.assert_array_equal(five[0], one[0][[0, 1, 3, 5, 7]])
    np.testing.assert_array_equal(five[1], one[1][[0, 1, 3, 5, 7]])
    with pytest.raises(Exception, match="not prediction stores"):
        read_predictions([job_inputs[0]])


def test_killed_memo_stage_resumes_at_the_next_chunk(tmp_path, job_inputs, monkeypatch):
    _memo(job_inputs, tmp_path / "reference.zarr", 0, 1)
    real, calls = memo_module.MemoAdapter.probabilities, []

    def killed_on_third_chunk(self, *args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, *args)

    monkeypatch.setattr(memo_module.MemoAdapter, "probabilities", killed_on_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        _memo(job_inputs, tmp_path / "killed.zarr", 0, 1)
    assert not (tmp_path / "killed.zarr").exists() and (tmp_path / "killed.zarr.partial").exists()
    calls.clear()
    monkeypatch.setattr(memo_module.MemoAdapter, "probabilities", lambda self, *a: (calls.append(1), real(self, *a))[1])
    _memo(job_inputs, tmp_path / "killed.zarr", 0, 1)
    assert len(calls) == 3  # 5 chunks of 2 images, two finished before the kill
    np.testing.assert_array_equal(
        read_predictions([tmp_path / "killed.zarr"])[0], read_predictions([tmp_path / "reference.zarr"])[0]
    )
