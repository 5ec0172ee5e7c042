"""DistributedDataParallel with 2 CPU processes (gloo) equals one process with the same global batch."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from omnimedseg.models import ModelConfig, build_model

# Expert dropout off: it is the only randomness that legitimately differs between ranks.
CONFIG = ModelConfig.preset("tiny_medsegx", adapter_dropout=0.0)
STEPS, PER_RANK = 2, 2


def _run(out: Path, data: Path, world: int, rank: int = 0) -> None:
    from omnimedseg.data.medsegdb import MedSegDBDataset
    from omnimedseg.models.training import PromptedSamples, TrainConfig, train, trainable_state

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = build_model(CONFIG)
    samples = PromptedSamples(MedSegDBDataset(data), size=CONFIG.image_size)
    config = TrainConfig(lr=1e-3, batch_size=PER_RANK * (2 // world), max_steps=STEPS, seed=3)
    result = train(model, samples, config, out / "run")
    torch.save({"state": trainable_state(model), "losses": result.losses}, out / f"rank{rank}.pt")


def _worker(rank: int, out: Path, data: Path) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{out / 'rendezvous'}", rank=rank, world_size=2)
    try:
        _run(out, data, 2, rank)
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_train_like_one_process_with_the_global_batch(realdata, tmp_path):
    data = realdata("medsegdb_example") / "eval"
    ddp = tmp_path / "ddp"
    ddp.mkdir()
    env = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        mp.spawn(_worker, args=(ddp, data), nprocs=2, join=True)
    finally:
        if env is None:
            os.environ.pop("OMP_NUM_THREADS")
        else:
            os.environ["OMP_NUM_THREADS"] = env
    single = tmp_path / "single"
    single.mkdir()
    threads = torch.get_num_threads()
    try:
        _run(single, data, 1)
    finally:
        torch.set_num_threads(threads)
    ranks = [torch.load(ddp / f"rank{r}.pt", weights_only=True) for r in range(2)]
    one = torch.load(single / "rank0.pt", weights_only=True)
    assert len(ranks[0]["losses"]) == STEPS and ranks[0]["losses"] == ranks[1]["losses"]  # all-reduced
    assert ranks[0]["losses"] == pytest.approx(one["losses"], rel=1e-4)
    for name, tensor in one["state"].items():
        assert torch.equal(ranks[0]["state"][name], ranks[1]["state"][name]), name  # replicas agree
        # 1e-4: attention key biases have a zero gradient up to rounding, which Adam rescales
        assert torch.allclose(ranks[0]["state"][name], tensor, atol=1e-4), name  # = the global batch
    checkpoint = torch.load(ddp / "run" / "model_latest.pth", weights_only=True)  # written by rank 0 only
    assert checkpoint["step"] == STEPS and not list((ddp / "run").glob(".*.tmp"))


def test_train_cli_under_torchrun_joins_the_group_and_writes_once(realdata, tmp_path):
    """The documented multi-process entry: ``torchrun -m omnimedseg train`` (gloo on CPU)."""
    import json
    import shutil
    import signal
    import subprocess
    import sys

    from omnimedseg.models import medsegx_checkpoint_keys

    if shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("torchrun is not installed next to this Python")
    torch.manual_seed(0)
    owned = set(medsegx_checkpoint_keys(CONFIG))
    sam_file = tmp_path / "sam.pth"
    torch.save({k: v for k, v in build_model(CONFIG).state_dict().items() if k not in owned}, sam_file)
    out = tmp_path / "run"
    command = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc-per-node", "2",
               "-m", "omnimedseg", "train", str(out), "--model", "tiny_medsegx", "--sam-checkpoint", str(sam_file),
               "--data", str(realdata("medsegdb_example") / "eval"), "--batch-size", "2", "--max-steps", "2",
               "--json"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both workers
        proc.communicate()
        raise
    assert proc.returncode == 0, stderr[-2000:]
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1  # rank 0 reports, rank 1 stays quiet
    summary = json.loads(lines[0])
    assert summary["steps"] == 2 and summary["images"] == 10
    assert len((out / "train_log.jsonl").read_text().splitlines()) == 2
