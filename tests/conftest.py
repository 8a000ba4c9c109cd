import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
torch.set_num_threads(1)

TINY_ADM = dict(
    arch="adm",
    image_size=8,
    in_channels=3,
    model_channels=8,
    out_channels=6,
    num_res_blocks=1,
    attention_resolutions="4",
    channel_mult=[1, 2],
    num_head_channels=8,
    use_scale_shift_norm=True,
    norm_groups=4,
)


@pytest.fixture
def tiny_adm_spec():
    return dict(TINY_ADM)


@pytest.fixture
def tiny_adm(tiny_adm_spec):
    """A random-weight ADM UNet with a non-zero output layer (the reference zero-initialises it)."""
    from sda_core.diffusion.adapt import configure_denoiser
    from sda_core.models.denoisers import build_denoiser

    torch.manual_seed(0)
    model = build_denoiser(tiny_adm_spec)
    torch.nn.init.normal_(model.out[2].weight, std=0.05)
    return configure_denoiser(model)


@pytest.fixture(scope="session")
def tiny_workdir(tmp_path_factory):
    """A copy of the workflow with the tiny digits config (tests/workflow_helpers.py), shared by the session."""
    from workflow_helpers import copy_workflow

    return copy_workflow(tmp_path_factory.mktemp("workflow"))


@pytest.fixture(scope="session")
def tiny_run(tiny_workdir, tmp_path_factory):
    """The tiny workflow run locally to the end, once per session (test_workflow.py, test_slurm.py).

    It runs on a fake two-GPU host with both GPUs locked by other jobs: the tiny config asks for the
    CPU, so no job may claim (or wait for) a GPU.
    """
    from workflow_helpers import every_gpu_locked, run_snakemake

    with every_gpu_locked(tmp_path_factory.mktemp("gpu-locks")) as fake_gpus:
        run_snakemake(tiny_workdir, "--configfile", "tiny.yaml", env=fake_gpus)
    return tiny_workdir


# Under pytest-xdist (`make test` runs two workers): a file's tests stay on one worker, so its module
# fixtures are made once, and the files sharing the session's tiny run share a worker. The longest
# files start first, so that none of them is left running alone at the end. (xdist's own `--dist
# loadgroup` does nothing under pytest 9.2: it renames node ids through an attribute pytest no longer
# reads.)
SHARED_WORKER = {"tests/test_slurm.py": "tests/test_workflow.py"}
LONGEST_FIRST = [
    "tests/test_workflow.py",  # with test_slurm.py: the tiny run, the SLURM rerun, the kills (~8 min)
    "tests/test_imagenet_workflow.py",
    "tests/test_compilation.py",  # inductor's first compilation on a machine (~2 min)
    "tests/test_segmentation_workflow.py",
]


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadFileScheduling

    class FileScheduling(LoadFileScheduling):
        def _split_scope(self, nodeid):
            scope = super()._split_scope(nodeid)
            return SHARED_WORKER.get(scope, scope)

        def _assign_work_unit(self, node):
            for scope in reversed(LONGEST_FIRST):
                if scope in self.workqueue:
                    self.workqueue.move_to_end(scope, last=False)
            super()._assign_work_unit(node)

    return FileScheduling(config, log)
