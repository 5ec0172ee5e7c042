"""MedSegX ViT-B inference throughput: fused SDPA attention vs the explicit softmax form.

Images/s and peak memory at batch 1 and 32, box prompt + task context, 256-px inputs,
through :func:`omnimedseg.models.predict`. Weights are random (speed does not depend on them),
so no checkpoint is needed. Each case runs in its own process so peak memory is its own:
peak RSS on CPU, peak allocated tensor memory on CUDA; the speed-up to report is the last line
per batch size, where both paths alternate on one model in one process (medians), so varying
machine load hits both alike. On CPU that line also gives the ratio of the process's CPU time
(user + system, medians), which other jobs on a shared machine disturb far less than wall time;
with ``--threads 1`` it measures the same work as wall time on an idle machine.

    python benchmarks/bench_models.py [--quick] [--device cpu|cuda] [--dtype fp32|bf16|fp16]
                                      [--batch-sizes 1 32] [--repeat N] [--threads N]
                                      [--encoder-only] [--profile]

``--encoder-only`` times the image encoder alone (preprocessing + ViT + neck, the part the
attention choice changes most); ``--profile`` prints where the time goes instead: a per-op
``torch.profiler`` table (op and input shapes) of both paths, medians over ``--repeat``
alternating rounds after a warm-up.

``--train`` times one optimizer step of the MedSegX recipe instead (frozen encoders, adapters +
embeddings + mask decoder trained, Dice+BCE min over three masks, AdamW) in fp32 and bf16
autocast, plus bf16 and fp32 under ``torch.compile`` on CUDA:

    python benchmarks/bench_models.py --train [--quick] [--device cuda] [--batch-sizes 32]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def best_time_and_peak(step, device, repeat: int) -> tuple[float, float]:
    """Best wall time of ``repeat`` calls of ``step`` (seconds) and peak memory (MiB) after warm-up."""
    import torch

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return min(times), peak_mib


def run_train_case(args: argparse.Namespace) -> dict:
    """One training step (forward, loss, backward, AdamW) timed like the inference cases."""
    import torch

    from omnimedseg.models import ModelConfig, Sam
    from omnimedseg.models.inference import autocast_context
    from omnimedseg.models.training import segmentation_loss

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config = ModelConfig.preset(args.config)
    torch.manual_seed(0)
    model = Sam(config).to(device)
    model.freeze_encoders()
    model.train()
    params = [p for _, p in model.trainable_parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-4, weight_decay=0.01)
    forward = torch.compile(model) if args.compile else model
    size = config.image_size
    images = torch.rand(args.batch, 3, size, size, device=device) * 255
    masks = torch.zeros(args.batch, size, size, dtype=torch.bool, device=device)
    masks[:, size // 4: size * 3 // 4, size // 5: size * 3 // 5] = True
    boxes = torch.tensor([[size * 0.2, size * 0.25, size * 0.6, size * 0.75]], device=device).repeat(args.batch, 1)
    context = torch.tensor([[2, 1, 4, 17, 59]], device=device).repeat(args.batch, 1)
    dtype = None if args.dtype == "fp32" else args.dtype

    def step() -> None:
        with autocast_context(device, dtype):
            logits, _ = forward(images, boxes=boxes, context=context, multimask_output=True)
        segmentation_loss(logits, masks).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(3 if args.compile else 1):  # warm-up (compilation, autotuning, optimizer state)
        step()
    best, peak_mib = best_time_and_peak(step, device, args.repeat)
    return {"dtype": args.dtype, "compile": args.compile, "batch": args.batch, "ms_per_step": best * 1000,
            "images_per_s": args.batch / best, "peak_mib": peak_mib}


def train_main(args: argparse.Namespace, device: str) -> None:
    import torch

    config = "tiny_medsegx" if args.quick else "medsegx_vit_b"
    repeat = args.repeat or (10 if device == "cuda" else 3)
    batches = args.batch_sizes or ([8] if args.quick else [32] if device == "cuda" else [4])
    cases = [("fp32", False), ("bf16", False)]
    if device == "cuda":
        cases += [("fp32", True), ("bf16", True)]
    where = torch.cuda.get_device_name(0) if device == "cuda" else f"cpu, {args.threads or torch.get_num_threads()} threads"
    print(f"MedSegX training step ({config}, frozen encoders, Dice+BCE min over 3 masks, AdamW), {where}, "
          f"torch {torch.__version__}, best of {repeat}")
    print(f"{'dtype':>5} {'compile':>7} {'batch':>5} {'ms/step':>9} {'images/s':>9} {'peak MiB':>9} {'vs fp32':>8}")
    for batch in batches:
        base = None
        for dtype, compiled in cases:
            command = [sys.executable, __file__, "--_case", "--_train", "--config", config, "--batch", str(batch),
                       "--device", device, "--dtype", dtype, "--repeat", str(repeat), "--threads", str(args.threads)]
            if compiled:
                command.append("--_compile")
            done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
            if done.returncode != 0:
                print(f"{dtype:>5} {str(compiled):>7} {batch:>5} failed: {done.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(done.stdout.strip().splitlines()[-1])
            base = base or r["ms_per_step"]
            print(f"{dtype:>5} {str(compiled):>7} {batch:>5} {r['ms_per_step']:>9.1f} {r['images_per_s']:>9.2f} "
                  f"{r['peak_mib']:>9.0f} {base / r['ms_per_step']:>7.2f}x")


def inference_step(args: argparse.Namespace, impl: str = "sdpa"):
    """(model, step): one random-weight model and a call that runs ``predict`` on a fixed batch
    (or only the image encoder with ``--encoder-only``) and waits for the device."""
    import torch

    from omnimedseg.models import ModelConfig, Sam, predict
    from omnimedseg.models.inference import autocast_context

    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = Sam(ModelConfig.preset(args.config, attn_impl=impl)).eval().to(device)
    size = model.config.image_size
    images = torch.rand(args.batch, 3, size, size, device=device) * 255
    boxes = torch.tensor([[size * 0.2, size * 0.25, size * 0.7, size * 0.8]], device=device).repeat(args.batch, 1)
    context = torch.tensor([[2, 1, 4, 17, 59]], device=device).repeat(args.batch, 1)
    dtype = None if args.dtype == "fp32" else args.dtype

    def step() -> None:
        if args.encoder_only:
            with torch.inference_mode(), autocast_context(device, dtype):
                model.encode_images(images, context)
        else:
            predict(model, images, boxes=boxes, context=context, autocast_dtype=dtype)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return model, step


def run_case(args: argparse.Namespace) -> dict:
    model, step = inference_step(args, args.impl)
    device = model.device
    step()  # warm-up: kernels, allocator, lazy inits
    best, peak_mib = best_time_and_peak(step, device, args.repeat)
    return {"impl": args.impl, "batch": args.batch, "images_per_s": args.batch / best,
            "ms_per_batch": best * 1000, "peak_mib": peak_mib}


def run_interleaved(args: argparse.Namespace) -> dict:
    """sdpa and explicit alternately on one model in one process (medians): machine load
    that varies during the run hits both alike, unlike the per-process table."""
    import statistics

    model, step = inference_step(args)
    times: dict[str, list[float]] = {"sdpa": [], "explicit": []}
    cpu_times: dict[str, list[float]] = {"sdpa": [], "explicit": []}
    for i in range(args.repeat + 1):
        for impl in times:
            model.set_attention_implementation(impl)
            start, cpu_start = time.perf_counter(), time.process_time()
            step()
            if i:  # the first round is warm-up
                times[impl].append(time.perf_counter() - start)
                cpu_times[impl].append(time.process_time() - cpu_start)
    med = {impl: statistics.median(v) for impl, v in times.items()}
    cpu = {impl: statistics.median(v) for impl, v in cpu_times.items()}
    rounds = [e / s for s, e in zip(times["sdpa"], times["explicit"])]
    return {"batch": args.batch, "sdpa_ms": med["sdpa"] * 1000, "explicit_ms": med["explicit"] * 1000,
            "speedup": med["explicit"] / med["sdpa"], "round_min": min(rounds), "round_max": max(rounds),
            "cpu_speedup": cpu["explicit"] / cpu["sdpa"]}


def run_profile(args: argparse.Namespace) -> str:
    """Per-op self CPU time (op, input shapes) of both paths, medians of ``repeat`` alternating
    profiled rounds after an unprofiled warm-up round (first-touch page faults distort it)."""
    import collections
    import statistics

    from torch.profiler import ProfilerActivity, profile

    model, step = inference_step(args)
    impls = ("sdpa", "explicit")
    ms: dict[str, dict[tuple[str, str], list[float]]] = {impl: collections.defaultdict(list) for impl in impls}
    for i in range(args.repeat + 1):
        for impl in impls:
            model.set_attention_implementation(impl)
            if not i:
                step()
                continue
            with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
                step()
            for event in prof.key_averages(group_by_input_shape=True):
                ms[impl][(event.key, str(event.input_shapes))].append(event.self_cpu_time_total / 1000)

    def median(impl: str, key) -> float:
        values = ms[impl].get(key, [])
        return statistics.median(values) if values else 0.0

    totals = {impl: sum(median(impl, key) for key in ms[impl]) for impl in impls}
    keys = sorted(set(ms["sdpa"]) | set(ms["explicit"]), key=lambda k: -max(median(i, k) for i in impls))
    lines = [f"per-op self CPU ms, medians of {args.repeat} profiled rounds; totals: sdpa {totals['sdpa']:.0f}, "
             f"explicit {totals['explicit']:.0f}",
             f"{'sdpa':>8} {'%':>5} {'explicit':>8} {'%':>5}  op [input shapes]"]
    for key in keys[:args.profile_rows]:
        s, e = median("sdpa", key), median("explicit", key)
        lines.append(f"{s:8.1f} {100 * s / totals['sdpa']:5.1f} {e:8.1f} {100 * e / totals['explicit']:5.1f}  "
                     f"{key[0]} {key[1][:110]}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny MedSegX config (seconds, for smoke tests)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--dtype", default="fp32", choices=["fp32", "bf16", "fp16"], help="autocast dtype")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                        help="inference: 1 32; --train: 32 on CUDA, 4 on CPU, 8 with --quick")
    parser.add_argument("--train", action="store_true", help="time training steps (fp32/bf16, +compile on CUDA)")
    parser.add_argument("--_train", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--_compile", dest="compile", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per case (best is kept)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    parser.add_argument("--encoder-only", action="store_true", help="time the image encoder alone, not predict()")
    parser.add_argument("--profile", action="store_true",
                        help="print a per-op profile of both attention paths (first --batch-sizes entry)")
    parser.add_argument("--profile-rows", type=int, default=30, help="rows of the --profile table")
    parser.add_argument("--impls", nargs="+", default=["sdpa", "explicit"], choices=["sdpa", "explicit"])
    parser.add_argument("--_case", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--_interleaved", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--config", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--impl", default="sdpa", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._case and args.profile:
        print(run_profile(args))
        return
    if args._case:
        case = run_interleaved if args._interleaved else run_train_case if args._train else run_case
        print(json.dumps(case(args)))
        return

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.train:
        train_main(args, device)
        return
    args.batch_sizes = args.batch_sizes or [1, 32]
    config = "tiny_medsegx" if args.quick else "medsegx_vit_b"
    repeat = args.repeat or (3 if args.quick or device == "cuda" else 2)
    if device == "cuda":
        repeat = max(repeat, 10)
    where = torch.cuda.get_device_name(0) if device == "cuda" else f"cpu, {args.threads or torch.get_num_threads()} threads"
    from omnimedseg.models import ModelConfig

    size = ModelConfig.preset(config).image_size
    what = "image encoder only" if args.encoder_only else "predict: box + task context"
    print(f"MedSegX inference ({config}, {size}x{size} inputs, {what}), {where}, "
          f"torch {torch.__version__}, autocast {args.dtype}, best of {repeat}", flush=True)
    common = ["--config", config, "--device", device, "--dtype", args.dtype, "--repeat", str(repeat),
              "--threads", str(args.threads)] + (["--encoder-only"] if args.encoder_only else [])
    if args.profile:
        command = [sys.executable, __file__, "--_case", "--profile", "--profile-rows", str(args.profile_rows),
                   "--batch", str(args.batch_sizes[0])] + common
        done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
        print(done.stdout if done.returncode == 0 else f"profile failed: {done.stderr.strip().splitlines()[-1:]}")
        return
    memory = "peak allocated MiB" if device == "cuda" else "peak RSS MiB"
    print(f"{'attention':>9} {'batch':>5} {'images/s':>9} {'ms/batch':>9} {memory:>18} {'sdpa speed-up':>13}")
    for batch in args.batch_sizes:
        results = {}
        for impl in args.impls:
            command = [sys.executable, __file__, "--_case", "--impl", impl, "--batch", str(batch)] + common
            done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
            if done.returncode != 0:
                print(f"{impl:>9} {batch:>5} failed: {done.stderr.strip().splitlines()[-1:]}")
                continue
            results[impl] = json.loads(done.stdout.strip().splitlines()[-1])
        for impl, r in results.items():
            speedup = ""
            if impl == "sdpa" and "explicit" in results:
                speedup = f"{r['images_per_s'] / results['explicit']['images_per_s']:.2f}x"
            print(f"{impl:>9} {batch:>5} {r['images_per_s']:>9.2f} {r['ms_per_batch']:>9.1f} "
                  f"{r['peak_mib']:>18.0f} {speedup:>13}")
        command = [sys.executable, __file__, "--_case", "--_interleaved", "--batch", str(batch)] + common
        done = subprocess.run(command, capture_output=True, text=True, env=os.environ.copy())
        if done.returncode == 0:
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"  interleaved in one process, medians of {repeat}: sdpa {r['sdpa_ms']:.1f} ms, explicit "
                  f"{r['explicit_ms']:.1f} ms per batch: sdpa speed-up {r['speedup']:.2f}x (rounds "
                  f"{r['round_min']:.2f}-{r['round_max']:.2f}x)" + (f"; in process CPU time {r['cpu_speedup']:.2f}x"
                  if device == "cpu" else ""), flush=True)


if __name__ == "__main__":
    main()
