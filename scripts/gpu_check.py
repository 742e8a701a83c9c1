"""The one prepared check of idmm's CUDA path: environment, CUDA tests, throughput, a real run, torchrun.

Run it through ``scripts/gpu_check.sh OUT_DIR`` (which installs the project first when needed); it writes
``OUT_DIR/gpu_check.json`` (keys below) and prints a readable log. On a machine without CUDA it runs a
small CPU version of every part that can run there and says which CUDA parts it skipped, so CI tests
the script itself.

JSON keys:

* ``date``, ``commit``, ``ok`` (every check that ran passed), ``skipped`` ([reason, …]);
* ``env``: ``python``, ``torch``, ``torchvision``, ``timm``, ``cuda`` (torch's CUDA version), ``gpu``,
  ``gpu_count``, ``driver``, ``capability``, ``bf16``;
* ``cuda_tests``: ``passed``, ``failed``, ``skipped``, ``seconds`` (``pytest -m cuda``);
* ``images``: ``count``, ``folder``, ``seconds`` to write the JPEG folder, ``bank_seconds``, ``bank_gib``,
  ``bank_where`` (the 112-px pretraining bank);
* ``throughput``: a list of ``{loop: plain|idmm, amp: bf16|fp32, compiled, images_per_s, step_ms,
  peak_mem_gib, compile_s, mfu}`` — ``plain`` is forward/backward/step on pre-made tensors of the
  crops' shapes, ``idmm`` the full IDMM step (crops, augmentation, CutMix, loss) from the image bank;
  ``mfu`` = model FLOPs (``torch.utils.flop_counter``, forward + backward) × images/s ÷ the GPU's
  dense peak for that precision; ``overhead`` = 1 − idmm / plain per (amp, compiled);
* ``run``: the real ``idmm run`` (pretraining 2 epochs + fine-tuning 1 epoch at 224 on the generated
  folder; on the CPU 6 + 1 tiny epochs): ``status``, ``seconds``, ``test_acc``, ``stages``; ``resume``: the
  same recipe stopped with SIGTERM mid-pretraining then ``--resume``d: ``stopped_exit`` (130), ``status``,
  ``weights_equal`` (final weights identical to the uninterrupted run's; informative on a GPU);
* ``torchrun``: a 1-process ``torchrun`` run (NCCL on a GPU, gloo on the CPU): ``status``, ``backend``,
  ``seconds``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

from bench_bank import write_folder  # noqa: E402

from idmm_tui.engine.batches import build_bank, in_chunks, train_storage_size  # noqa: E402
from idmm_tui.engine.views import crop_groups  # noqa: E402

#: Dense peak FLOP/s by GPU name (bf16, and float32 matmuls on TF32 tensor cores), vendors' spec sheets.
PEAK_FLOPS = {
    "H200": {"bf16": 989e12, "fp32": 494e12},
    "H100 PCIe": {"bf16": 756e12, "fp32": 378e12},
    "H100": {"bf16": 989e12, "fp32": 494e12},
    "A100": {"bf16": 312e12, "fp32": 156e12},
    "L40S": {"bf16": 362e12, "fp32": 181e12},
    "A10": {"bf16": 125e12, "fp32": 62.5e12},
}


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def idmm_cmd() -> list[str]:
    return [sys.executable, "-m", "idmm_tui"]


# -- environment ------------------------------------------------------------------------------------


def environment() -> dict:
    import timm
    import torchvision

    env = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "timm": timm.__version__,
        "cuda": torch.version.cuda,
        "gpu": None,
        "gpu_count": torch.cuda.device_count(),
        "driver": None,
        "capability": None,
        "bf16": False,
    }
    if torch.cuda.is_available():
        env["gpu"] = torch.cuda.get_device_name(0)
        env["capability"] = ".".join(map(str, torch.cuda.get_device_capability(0)))
        env["bf16"] = torch.cuda.is_bf16_supported()
        try:
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
            )
            env["driver"] = out.stdout.strip().splitlines()[0] if out.stdout.strip() else None
        except (OSError, subprocess.SubprocessError):
            pass
    return env


def commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        return out.stdout.strip() or None
    except OSError:
        return None


# -- CUDA tests -------------------------------------------------------------------------------------


def cuda_tests(out: Path) -> dict:
    start = time.perf_counter()
    report = out / "cuda_tests.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", f"--junitxml={report}", "tests"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    (out / "cuda_tests.log").write_text(proc.stdout + proc.stderr)
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    if report.exists():
        import xml.etree.ElementTree as ET

        suite = ET.parse(report).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        total = int(suite.get("tests", 0))
        counts["failed"] = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        counts["skipped"] = int(suite.get("skipped", 0))
        counts["passed"] = total - counts["failed"] - counts["skipped"]
    counts["seconds"] = round(time.perf_counter() - start, 1)
    counts["exit_code"] = proc.returncode
    return counts


# -- throughput -------------------------------------------------------------------------------------


def peak_flops(gpu: str | None, amp: str) -> float | None:
    if not gpu:
        return None
    for name, peaks in PEAK_FLOPS.items():  # most specific names first in the table
        if name in gpu:
            return peaks[amp]
    return None


def flops_per_image(backbone_name: str, resolution: int, device: torch.device) -> float:
    """Forward + backward FLOPs of the backbone for one image (counted on a batch of 2)."""
    from torch.utils.flop_counter import FlopCounterMode

    from idmm_tui.models.registry import create_backbone

    model = create_backbone(backbone_name, img_size=resolution).to(device)
    x = torch.randn(2, 3, resolution, resolution, device=device)
    with FlopCounterMode(display=False) as counter:
        model(x).sum().backward()
    return counter.get_total_flops() / 2


def throughput(args, bank, device: torch.device, env: dict, skipped: list[str]) -> list[dict]:
    from idmm_tui.engine.optim import make_optimizer
    from idmm_tui.methods import get_method
    from idmm_tui.methods.base import Batch
    from idmm_tui.models.registry import create_backbone
    from idmm_tui.recipe import pretrain_config

    cfg = pretrain_config(method="idmm", resolution=args.resolution, batch_size=args.batch, lr=1e-4, epochs=1)
    method = get_method("idmm")
    per_image = flops_per_image(args.backbone, args.resolution, device)
    variants = [("bf16", False), ("fp32", False), ("bf16", True)] if device.type == "cuda" else [("fp32", False)]
    if device.type != "cuda":
        skipped.append("throughput: bf16 and compiled variants need CUDA (compiling on a CPU takes minutes)")
    results = []
    for amp, compiled in variants:
        for loop in ("plain", "idmm"):
            torch.manual_seed(0)
            backbone = create_backbone(args.backbone, img_size=args.resolution)
            module = method.build(backbone, backbone.num_features, len(bank), cfg).to(device)
            compile_s = None
            if compiled:
                module.backbone.compile()
            optimizer = make_optimizer(module, cfg)
            gen = torch.Generator().manual_seed(0)
            order = torch.randperm(len(bank), generator=torch.Generator().manual_seed(1))
            steps = args.warmup + args.steps
            order = order.repeat(steps * args.batch // len(order) + 1)[: steps * args.batch]
            shapes = [(n * args.batch, s) for n, s in crop_groups(cfg)]
            plain_x = [torch.randn(n, 3, args.resolution, args.resolution, device=device) for n, _ in shapes]
            plain_y = [torch.randint(0, len(bank), (n,), device=device) for n, _ in shapes]
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            images, start = 0, None
            for i, (img, sizes, labels, ids) in enumerate(bank.batches(in_chunks(order, args.batch))):
                if i == args.warmup:
                    sync(device)
                    start, images = time.perf_counter(), 0
                tick = time.perf_counter()
                with autocast(device, amp):
                    if loop == "plain":
                        loss = sum(
                            torch.nn.functional.cross_entropy(module(x).float(), y)
                            for x, y in zip(plain_x, plain_y, strict=True)
                        )
                        seen = sum(x.shape[0] for x in plain_x)
                    else:
                        batch = Batch(img.to(device), sizes.to(device), labels.to(device), ids.to(device))
                        loss, seen = method.loss(module, batch, gen, cfg, 0)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if i == 0 and compiled:
                    sync(device)
                    compile_s = round(time.perf_counter() - tick, 1)
                images += seen
            sync(device)
            seconds = time.perf_counter() - start
            ips = images / seconds
            peak = peak_flops(env.get("gpu"), amp)
            row = {
                "loop": loop,
                "amp": amp,
                "compiled": compiled,
                "images_per_s": round(ips, 1),
                "step_ms": round(1000 * seconds / args.steps, 2),
                "peak_mem_gib": round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
                if device.type == "cuda"
                else None,
                "compile_s": compile_s,
                "mfu": round(per_image * ips / peak, 4) if peak else None,
            }
            say(
                f"throughput {loop:5s} {amp} {'compiled' if compiled else 'eager   '}: {ips:9.1f} images/s, "
                f"{row['step_ms']} ms/step, peak {row['peak_mem_gib']} GiB, MFU {row['mfu']}"
            )
            results.append(row)
            del module, optimizer
    return results


def overheads(rows: list[dict]) -> dict:
    out = {}
    for r in rows:
        if r["loop"] == "idmm":
            plain = next(
                p for p in rows if p["loop"] == "plain" and p["amp"] == r["amp"] and p["compiled"] == r["compiled"]
            )
            key = f"{r['amp']}{'-compiled' if r['compiled'] else ''}"
            out[key] = round(1 - r["images_per_s"] / plain["images_per_s"], 4)
    return out


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, amp: str):
    import contextlib

    if amp == "bf16":
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


# -- real runs --------------------------------------------------------------------------------------


def write_recipe(path: Path, folder: Path, args, device: torch.device) -> None:
    path.write_text(f"""
seed = 0
device = "{device.type}"
checkpoint_every_s = 0
log_every = 2
[data]
dataset = "imagefolder"
root = "{folder}"
num_workers = {args.workers}
[model]
backbone = "{args.backbone}"
[pretrain]
method = "idmm"
epochs = {args.pretrain_epochs}
resolution = {args.resolution}
batch_size = {args.batch}
warmup_epochs = 1
[[finetune]]
epochs = 1
resolution = {args.ft_resolution}
batch_size = {args.batch}
warmup_epochs = 0
""")


def weights(run: Path) -> dict[str, str]:
    from idmm_tui.fsutil import sha256_file

    return {
        p.name: sha256_file(p)
        for p in sorted((run / "checkpoints").glob("*.safetensors"))
        if not p.name.startswith("last.")
    }


def real_run(out: Path, recipe: Path) -> dict:
    runs = out / "runs"
    start = time.perf_counter()
    proc = subprocess.run(
        [*idmm_cmd(), "run", str(recipe), "--runs-dir", str(runs), "--name", "check", "--json"],
        capture_output=True,
        text=True,
    )
    (out / "run.log").write_text(proc.stderr)
    result: dict = {"exit_code": proc.returncode, "seconds": round(time.perf_counter() - start, 1)}
    if proc.returncode == 0:
        summary = json.loads(proc.stdout)
        result.update(
            status=summary.get("status"), test_acc=summary.get("test_acc"), stages=sorted(summary.get("stages", {}))
        )
    say(
        f"idmm run: exit {proc.returncode}, {result.get('status')}, test_acc {result.get('test_acc')}, "
        f"{result['seconds']} s"
    )
    # stopped with SIGTERM mid-pretraining, then resumed
    name = "check-resume"
    with open(out / "resume.log", "w") as log:
        child = subprocess.Popen(
            [*idmm_cmd(), "run", str(recipe), "--runs-dir", str(runs), "--name", name],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    metrics = runs / name / "metrics.jsonl"
    deadline = time.monotonic() + 600
    while child.poll() is None and time.monotonic() < deadline:
        if metrics.exists() and '"kind":"train"' in metrics.read_text():  # a few steps in: stop it
            child.send_signal(signal.SIGTERM)
            break
        time.sleep(0.2)
    stopped = child.wait(timeout=600)
    resumed = subprocess.run(
        [*idmm_cmd(), "run", "--resume", str(runs / name), "--json"], capture_output=True, text=True
    )
    (out / "resume.log").open("a").write(resumed.stderr)
    status = json.loads(resumed.stdout).get("status") if resumed.returncode == 0 else None
    result["resume"] = {
        "stopped_exit": stopped,
        "exit_code": resumed.returncode,
        "status": status,
        "weights_equal": proc.returncode == 0
        and status == "completed"
        and weights(runs / "check") == weights(runs / name),
    }
    say(
        f"stop + resume: stopped with exit {stopped}, resumed {status}, weights equal "
        f"{result['resume']['weights_equal']}"
    )
    return result


def torchrun_run(out: Path, recipe: Path, device: torch.device) -> dict:
    start = time.perf_counter()
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "1",
        "-m",
        "idmm_tui",
        "run",
        str(recipe),
        "--runs-dir",
        str(out / "runs"),
        "--name",
        "check-torchrun",
        "--set",
        "finetune.0.epochs=0",
        "--json",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    (out / "torchrun.log").write_text(proc.stderr)
    status = None
    if proc.returncode == 0:
        status = json.loads(proc.stdout[proc.stdout.index("{") :]).get("status")
    result = {
        "exit_code": proc.returncode,
        "status": status,
        "backend": "nccl" if device.type == "cuda" else "gloo",
        "seconds": round(time.perf_counter() - start, 1),
    }
    say(f"torchrun 1 process ({result['backend']}): exit {proc.returncode}, {status}")
    return result


# -- main -------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--images", type=int, default=None, help="default: 2040 on a GPU, 24 on the CPU")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: CPUs, max 8)")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    gpu = device.type == "cuda"
    # the paper's pretraining step on a GPU; a tiny CPU version of every part elsewhere
    args.backbone = "deit_tiny_patch16_224" if gpu else "vit_nano_p2"
    args.resolution, args.ft_resolution = (112, 224) if gpu else (16, 32)
    args.batch = 256 if gpu else 8
    args.warmup, args.steps = (3, 10) if gpu else (1, 2)
    args.images = args.images or (2040 if gpu else 24)
    args.pretrain_epochs = 2 if gpu else 6  # on the CPU: long enough to be stopped in the middle
    args.workers = args.workers or min(8, os.cpu_count() or 1)
    skipped: list[str] = [] if gpu else ["no CUDA device: CUDA tests skip themselves; NCCL replaced by gloo"]
    report: dict = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),  # noqa: UP017 (py3.10)
        "commit": commit(),
        "skipped": skipped,
    }
    report["env"] = env = environment()
    say(f"environment: {json.dumps(env)}")

    report["cuda_tests"] = cuda_tests(out)
    say(f"CUDA tests: {report['cuda_tests']}")

    folder = out / "photos"
    start = time.perf_counter()
    if not (folder / "train").is_dir():
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            chunk = max(1, args.images // args.workers)
            starts = list(range(0, args.images, chunk))
            list(pool.map(_write_part, [(folder, s, min(chunk, args.images - s)) for s in starts]))
    from idmm_tui.data.registry import load_split

    split = load_split("imagefolder", folder, "train")
    written = round(time.perf_counter() - start, 1)
    start = time.perf_counter()
    bank = build_bank(split, train_storage_size(args.resolution, 0.05), cache="yes", num_workers=args.workers)
    bank = bank.place(device)
    report["images"] = {
        "count": len(split),
        "folder": str(folder),
        "seconds": written,
        "bank_seconds": round(time.perf_counter() - start, 1),
        "bank_gib": round(bank.nbytes / 2**30, 3),
        "bank_where": bank.where(),
    }
    say(f"images: {report['images']}")

    report["throughput"] = throughput(args, bank, device, env, skipped)
    report["overhead"] = overheads(report["throughput"])
    say(f"pipeline overhead (1 - idmm/plain): {report['overhead']}")
    del bank

    recipe = out / "check.toml"
    write_recipe(recipe, folder, args, device)
    report["run"] = real_run(out, recipe)
    report["torchrun"] = torchrun_run(out, recipe, device)

    checks = [
        report["cuda_tests"]["failed"] == 0,
        report["run"].get("status") == "completed",
        report["run"]["resume"]["status"] == "completed" and report["run"]["resume"]["stopped_exit"] == 130,
        report["run"]["resume"]["weights_equal"] or gpu,  # bit-identical on the CPU; informative on a GPU
        report["torchrun"]["status"] == "completed",
    ]
    report["ok"] = all(checks)
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    say(f"wrote {out / 'gpu_check.json'}: ok = {report['ok']}; skipped: {skipped}")
    return 0 if report["ok"] else 1


def _write_part(job: tuple[Path, int, int]) -> None:
    folder, first, count = job
    write_folder(folder, count, seed=first, start=first)


if __name__ == "__main__":
    raise SystemExit(main())
