"""Measure the exact torch t-SNE (idmm's before 0.2, now scripts/tsne_exact.py) against openTSNE and scikit-learn.

Usage (a finished stage of a run, e.g. the demo's pretraining; or the embedded test images' pixels):

    python scripts/tsne_compare.py RUN_DIR [--stage pretrain] [--points 2000] [--threads 1]
    python scripts/tsne_compare.py --pixels [--points 2000]

For each implementation: wall time, the KL divergence of its map under idmm's exact P (same perplexity,
same PCA-50 input), and the leave-one-out 10-NN accuracy in the 2-D map (`knn_acc_2d`, what
`idmm viz tsne` prints). Run from the repository root (the script's folder is on sys.path: it imports
tsne_exact). scikit-learn comes with openTSNE.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from tsne_exact import joint_probabilities, kl_divergence, pca, tsne

from idmm_tui.evaluation.neighbours import leave_one_out_knn_accuracy
from idmm_tui.evaluation.tsne import tsne as opentsne


def features(args) -> tuple[torch.Tensor, torch.Tensor, str]:
    if args.pixels:
        from idmm_tui.data.embedded_set import load_arrays

        arrays = load_arrays()
        x = torch.as_tensor(arrays["x_test"].reshape(len(arrays["x_test"]), -1).astype(np.float32))
        y = torch.as_tensor(arrays["y_test"].astype(np.int64))
        keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))[: args.points]
        return x[keep] / 255.0, y[keep], "embedded test pixels"
    from idmm_tui.evaluation.features import load_stage, sample_indices, stage_features
    from idmm_tui.runs.store import open_run_dir

    frozen = load_stage(open_run_dir(args.run), args.stage, "cpu")
    feats = stage_features(
        frozen, "test", select=lambda labels: sample_indices(labels, max_points=args.points, max_classes=None, seed=0)
    )
    return feats.features, feats.labels, f"{args.run} stage {frozen.stage} test features"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", nargs="?")
    parser.add_argument("--stage", default=None)
    parser.add_argument("--pixels", action="store_true")
    parser.add_argument("--points", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--perplexity", type=float, default=30.0)
    parser.add_argument("--no-sklearn-exact", action="store_true", help="skip scikit-learn's exact t-SNE (slow)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x, y, what = features(args)
    reduced = pca(x, 50)
    p = joint_probabilities(reduced, args.perplexity)
    inputs = reduced.float().numpy()
    rows = []

    def measure(name, fn):
        tick = time.perf_counter()
        emb = torch.as_tensor(np.asarray(fn(), dtype=np.float32))
        seconds = time.perf_counter() - tick
        rows.append(
            {
                "implementation": name,
                "seconds": round(seconds, 2),
                "kl": round(kl_divergence(p, emb), 4),
                "knn_acc_2d": round(leave_one_out_knn_accuracy(emb, y, k=10), 2),
            }
        )
        print(json.dumps(rows[-1]), flush=True)

    measure("idmm 0.1 exact (torch)", lambda: tsne(x, perplexity=args.perplexity, seed=0).embedding.numpy())
    measure(
        "idmm viz tsne (PCA-50 + openTSNE)",
        lambda: opentsne(x, perplexity=args.perplexity, seed=0, threads=args.threads).embedding.numpy(),
    )
    try:
        from openTSNE import TSNE as OpenTSNE

        measure(
            "openTSNE (FFT, defaults)",
            lambda: OpenTSNE(perplexity=args.perplexity, n_jobs=args.threads, random_state=0).fit(inputs),
        )
        measure(
            "openTSNE (exact neighbours, BH)",
            lambda: OpenTSNE(
                perplexity=args.perplexity,
                n_jobs=args.threads,
                random_state=0,
                neighbors="exact",
                negative_gradient_method="bh",
            ).fit(inputs),
        )
    except ImportError:
        print("openTSNE not installed")
    try:
        from sklearn.manifold import TSNE as SkTSNE

        measure(
            "scikit-learn (Barnes-Hut)",
            lambda: SkTSNE(perplexity=args.perplexity, random_state=0, n_jobs=args.threads, init="pca").fit_transform(
                inputs
            ),
        )
        if args.no_sklearn_exact:
            raise ImportError
        measure(
            "scikit-learn (exact)",
            lambda: SkTSNE(
                perplexity=args.perplexity, random_state=0, n_jobs=args.threads, method="exact", init="random"
            ).fit_transform(inputs),
        )
    except ImportError:
        print("scikit-learn: not installed (or its exact t-SNE skipped)")
    feats = leave_one_out_knn_accuracy(x.float(), y, k=10)
    print(f"{what}: {len(y)} points; 10-NN accuracy on the features themselves {feats:.2f} %")
    print(f"{'implementation':34s} {'seconds':>8s} {'KL (exact P)':>13s} {'knn_acc_2d':>11s}")
    for r in rows:
        print(f"{r['implementation']:34s} {r['seconds']:8.2f} {r['kl']:13.4f} {r['knn_acc_2d']:11.2f}")


if __name__ == "__main__":
    main()
