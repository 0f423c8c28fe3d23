"""Drift benchmark: time to a decision and detection power, vitmon vs Evidently and alibi-detect.

Not a test. Run from the repository root::

    .venv/bin/python bench/drift.py [--peer-python PY] [--reps 10] [--calibration 1000]

Workloads (as in issue 4), at alpha = 0.01:

* embedding MMD: 2,000 reference x 2,000 window vectors of 768 dimensions, 100 permutations;
* feature drift: 20 features x 100,000 rows per side.

vitmon is timed in this process on a reference profile built beforehand (reference capture is a
one-off, timed separately): the decision is ``observe`` of the window plus ``evaluate``. The
peers (Evidently, alibi-detect) run in a subprocess of ``--peer-python`` on the very same arrays,
written to a temporary directory. alibi-detect is under the Business Source License: a benchmark
peer only, never a dependency of vitmon, so it lives in its own virtualenv. Power is the fraction
of ``--reps`` fixed small shifts detected by each tool with the same decision rule.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ALPHA = 0.01
N_REF, N_WIN, DIM, N_PERM = 2000, 2000, 768, 100
N_FEAT, N_ROWS = 20, 100_000
EMB_SHIFT = 0.15  # mean shift of one of 16 latent factors, in its standard deviations
FEAT_SHIFT = 0.012  # mean shift of 2 of 20 features, in standard deviations


# --- data -------------------------------------------------------------------------------------

def embeddings(rng: np.random.Generator, mix: np.ndarray, n: int, shift: float) -> np.ndarray:
    z = rng.normal(0, 1, (n, mix.shape[0]))
    z[:, 0] += shift
    return (z @ mix + rng.normal(0, 1, (n, mix.shape[1]))).astype(np.float32)


def features(rng: np.random.Generator, n: int, shift: float) -> np.ndarray:
    """20 continuous features of four shapes; the first two are shifted by ``shift`` sd."""
    cols = []
    for j in range(N_FEAT):
        kind = j % 4
        x = (rng.normal(0, 1, n) if kind == 0 else rng.lognormal(0, 0.5, n) if kind == 1
             else rng.beta(2, 5, n) if kind == 2 else rng.gamma(3, 1, n))
        sd = [1.0, 0.6, 0.16, 1.73][kind]
        cols.append(x + (shift * sd if j < 2 else 0.0))
    return np.stack(cols, 1)


# --- vitmon -----------------------------------------------------------------------------------

def embedding_profile(ref_a, ref_b):
    """vitmon's reference profile from 4,000 reference vectors: a 2,000-vector test sample and
    a disjoint 2,000 for the PCA basis. Returns ``(profile, build seconds)``."""
    from detectors.reference import ProfileConfig, build_reference_profile
    from detectors.testing import make_batch

    t = time.perf_counter()
    ids = np.array([f"r{i}" for i in range(len(ref_a) + len(ref_b))], dtype=object)
    profile = build_reference_profile(make_batch(len(ids), event_id=ids,
                                                 embedding=np.concatenate([ref_a, ref_b])),
                                      ProfileConfig(embedding_sample_size=N_REF, pca_fit_size=N_REF))
    return profile, time.perf_counter() - t


def vitmon_embedding(profile, windows, n_perm=N_PERM):
    from detectors.embedding_drift import EmbeddingDrift
    from detectors.testing import context, make_batch

    det = EmbeddingDrift(sample_size=N_WIN, n_permutations=n_perm, domain_classifier="never")
    times, detected = [], []
    for w, x in enumerate(windows):
        batch = make_batch(len(x), event_id=np.array([f"w{w}-{i}" for i in range(len(x))],
                                                     dtype=object), embedding=x)
        t = time.perf_counter()
        main = det.evaluate(det.observe(det.empty(), batch),
                            context(profile, ALPHA, window_start_ms=w))[0]
        times.append(time.perf_counter() - t)
        detected.append(main.status.value == "alert")
    explain = EmbeddingDrift(sample_size=N_WIN, domain_classifier="always")
    t = time.perf_counter()
    explain.evaluate(explain.observe(det.empty(), batch), context(profile, ALPHA))
    return {"decision_s": float(np.median(times)),
            "with_domain_classifier_s": time.perf_counter() - t, "detected": detected}


def vitmon_mmd_full_dim(x_ref, windows):
    """The same permutation test on the raw 768-d vectors (no PCA), for the record."""
    from detectors.stats.mmd import mmd_permutation_test
    times, detected = [], []
    for i, x in enumerate(windows):
        t = time.perf_counter()
        res = mmd_permutation_test(x_ref, x, N_PERM, seed=i)
        times.append(time.perf_counter() - t)
        detected.append(res.p_value <= ALPHA)
    return {"decision_s": float(np.median(times)), "detected": detected}


def vitmon_features(x_ref, windows):
    from detectors.feature_drift import FeatureDrift
    from detectors.reference import ProfileConfig, build_reference_profile
    from detectors.testing import context, make_batch

    names = tuple(f"image.f{j:02d}" for j in range(N_FEAT))

    def batch(x):
        return make_batch(len(x), event_id=np.zeros(len(x), dtype=object),
                          image={n[6:]: x[:, j] for j, n in enumerate(names)})

    ref_batch = batch(x_ref)
    t = time.perf_counter()
    profile = build_reference_profile(ref_batch, ProfileConfig(features=names))
    build = time.perf_counter() - t
    det = FeatureDrift(features=names, correction="bonferroni")
    times, detected = [], []
    for x in windows:
        b = batch(x)  # decoding is upstream of the detector: not timed
        t = time.perf_counter()
        main = det.evaluate(det.observe(det.empty(), b), context(profile, ALPHA))[0]
        times.append(time.perf_counter() - t)
        detected.append(main.status.value == "alert")
    return {"build_s": build, "decision_s": float(np.median(times)), "detected": detected}


# --- peers (run inside --peer-python) ---------------------------------------------------------

def peer_worker(workdir: Path) -> dict:
    out: dict = {}
    emb_ref = np.load(workdir / "emb_ref.npy")
    emb_win = np.load(workdir / "emb_win.npy")
    feat_ref = np.load(workdir / "feat_ref.npy")
    feat_win = np.load(workdir / "feat_win.npy")
    try:
        from alibi_detect.cd import KSDrift, MMDDrift
        t = time.perf_counter()
        mmd = MMDDrift(emb_ref, backend="pytorch", p_val=ALPHA, n_permutations=N_PERM)
        init = time.perf_counter() - t
        times, det = [], []
        for x in emb_win:
            t = time.perf_counter()
            det.append(bool(mmd.predict(x)["data"]["is_drift"]))
            times.append(time.perf_counter() - t)
        out["alibi_mmd"] = {"init_s": init, "decision_s": float(np.median(times)), "detected": det}
        t = time.perf_counter()
        ks = KSDrift(feat_ref, p_val=ALPHA, correction="bonferroni")
        init = time.perf_counter() - t
        times, det = [], []
        for x in feat_win:
            t = time.perf_counter()
            det.append(bool(ks.predict(x)["data"]["is_drift"]))
            times.append(time.perf_counter() - t)
        out["alibi_ks"] = {"init_s": init, "decision_s": float(np.median(times)), "detected": det}
    except ImportError as exc:
        out["alibi_error"] = repr(exc)
    try:
        import pandas as pd
        from evidently import DataDefinition, Dataset, Report
        from evidently.legacy.metrics.data_drift.embedding_drift_methods import mmd
        from evidently.presets import DataDriftPreset
        method = mmd(bootstrap=True, quantile_probability=1 - ALPHA)  # its test at level alpha
        ref_df = pd.DataFrame(emb_ref)
        times, det = [], []
        for x in emb_win:
            t = time.perf_counter()
            det.append(bool(method(pd.DataFrame(x), ref_df)[1]))
            times.append(time.perf_counter() - t)
        out["evidently_mmd"] = {"decision_s": float(np.median(times)), "detected": det}
        cols = [f"f{j:02d}" for j in range(N_FEAT)]
        dd = DataDefinition(numerical_columns=cols)
        ref_ds = Dataset.from_pandas(pd.DataFrame(feat_ref, columns=cols), data_definition=dd)
        times, det = [], []
        for x in feat_win:
            t = time.perf_counter()
            snap = Report([DataDriftPreset(method="ks", threshold=ALPHA)]).run(
                Dataset.from_pandas(pd.DataFrame(x, columns=cols), data_definition=dd), ref_ds)
            pvals = [m["value"] for m in snap.dict()["metrics"]
                     if m["metric_name"].startswith("ValueDrift")]
            times.append(time.perf_counter() - t)
            det.append(min(pvals) <= ALPHA / N_FEAT)  # the same Bonferroni rule as vitmon
        out["evidently_ks"] = {"decision_s": float(np.median(times)), "detected": det}
    except ImportError as exc:
        out["evidently_error"] = repr(exc)
    return out


# --- driver -----------------------------------------------------------------------------------

def calibration(n_windows: int) -> None:
    """False-alarm rates over ``n_windows`` stationary windows per detector (alpha = 0.01)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    import test_drift_calibration as cal  # the same setup as the calibration test

    from detectors.reference import ProfileConfig, build_reference_profile
    from detectors.synthetic import Traffic
    cal.WINDOWS = n_windows
    traffic = Traffic(seed=1, dim=32)
    rng = np.random.default_rng(2024)
    profile = build_reference_profile([traffic.batch(rng, 2000) for _ in range(10)], ProfileConfig(
        embedding_sample_size=500, pca_fit_size=1000, pca_components=8))
    for label, det, n_window, n_slices in cal.CASES:
        rate = cal.alarm_rate(det, traffic, profile, n_window, n_slices, seed=11)
        print(f"  {label:28s} {rate:.4f} over {n_windows} windows (2*alpha = {2 * ALPHA})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer-python", default=sys.executable,
                    help="interpreter with evidently and/or alibi-detect installed")
    ap.add_argument("--reps", type=int, default=10, help="shifted windows per power estimate")
    ap.add_argument("--calibration", type=int, default=0, help="also measure false-alarm rates")
    ap.add_argument("--peer-worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer_worker:
        print(json.dumps(peer_worker(args.peer_worker), default=lambda o: o.item()))
        return
    rng = np.random.default_rng(0)
    mix = rng.normal(0, 1, (16, DIM))
    emb_a, emb_b = embeddings(rng, mix, N_REF, 0.0), embeddings(rng, mix, N_REF, 0.0)
    emb_win = [embeddings(rng, mix, N_WIN, EMB_SHIFT) for _ in range(args.reps)]
    feat_ref = features(rng, N_ROWS, 0.0)
    feat_win = [features(rng, N_ROWS, FEAT_SHIFT) for _ in range(args.reps)]
    profile, build = embedding_profile(emb_a, emb_b)
    # Every tool compares windows with the same 2,000 reference vectors: the ones vitmon's
    # profile keeps (the other 2,000 only fit its PCA basis).
    emb_ref = profile["embedding"]["sample"]
    results = {"vitmon_mmd": {**vitmon_embedding(profile, emb_win), "build_s": build},
               "vitmon_mmd_1000": vitmon_embedding(profile, emb_win, n_perm=1000),
               "vitmon_mmd_768d": vitmon_mmd_full_dim(emb_ref, emb_win),
               "vitmon_features": vitmon_features(feat_ref, feat_win)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, arr in [("emb_ref", emb_ref), ("emb_win", np.stack(emb_win)),
                          ("feat_ref", feat_ref), ("feat_win", np.stack(feat_win))]:
            np.save(Path(tmp) / f"{name}.npy", arr)
        proc = subprocess.run([args.peer_python, __file__, "--peer-worker", tmp],
                              capture_output=True, text=True)
        if proc.returncode == 0:
            results.update(json.loads(proc.stdout.strip().splitlines()[-1]))
        else:
            print("peer run failed:", proc.stderr.strip().splitlines()[-1:], file=sys.stderr)
    report(results, args.reps)
    if args.calibration:
        print("\nfalse-alarm rate on stationary traffic, alpha = 0.01:")
        calibration(args.calibration)


def report(r: dict, reps: int) -> None:
    def line(label: str, res: dict, refs: tuple = ()) -> None:
        power = np.mean(res["detected"]) if res.get("detected") else float("nan")
        ratios = "".join(f"  {res['decision_s'] / ours:7.1f}x {name}" for name, ours in refs)
        print(f"  {label:36s} {res['decision_s'] * 1000:9.1f} ms   power {power:4.2f}{ratios}")

    print(f"embedding MMD, {N_REF} x {N_WIN} x {DIM}d, {N_PERM} permutations, shift "
          f"{EMB_SHIFT} sd of 1 of 16 latent factors, {reps} windows "
          f"(ratios: time / vitmon's time at 100 and 1,000 permutations):")
    refs = (("v100", r["vitmon_mmd"]["decision_s"]), ("v1000", r["vitmon_mmd_1000"]["decision_s"]))
    line("vitmon (PCA-32, torch, batched)", r["vitmon_mmd"])
    line("vitmon, 1,000 permutations", r["vitmon_mmd_1000"])
    line("vitmon permutation test on raw 768d", r["vitmon_mmd_768d"], refs[:1])
    for key, label in [("alibi_mmd", "alibi-detect MMDDrift (pytorch)"),
                       ("evidently_mmd", "Evidently mmd(bootstrap)")]:
        if key in r:
            line(label, r[key], refs)
    print(f"  (reference build {r['vitmon_mmd']['build_s']:.2f} s once; with the domain "
          f"classifier explanation {r['vitmon_mmd']['with_domain_classifier_s']:.2f} s)")
    print(f"feature drift, {N_FEAT} features x {N_ROWS} rows per side, shift {FEAT_SHIFT} sd "
          f"on 2 features, Bonferroni at {ALPHA}, {reps} windows (ratio: time / vitmon's):")
    refs = (("vitmon", r["vitmon_features"]["decision_s"]),)
    line("vitmon (grid sketch KS)", r["vitmon_features"])
    for key, label in [("alibi_ks", "alibi-detect KSDrift"),
                       ("evidently_ks", "Evidently DataDriftPreset(ks)")]:
        if key in r:
            line(label, r[key], refs)
    print(f"  (reference build {r['vitmon_features']['build_s']:.2f} s once)")
    for key in ("alibi_error", "evidently_error"):
        if key in r:
            print(f"  {key}: {r[key]}")


if __name__ == "__main__":
    main()
