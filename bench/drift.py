"""Drift benchmark: power, false-alarm rate and time to a decision, vitmon vs its old test, Evidently
and alibi-detect, on the same data in the same run.

Not a test. Run from the repository root::

    .venv/bin/python bench/drift.py [--peer-python /work/peer-venv/bin/python] [--reps 20]
                                    [--null 100] [--calibration 1000]

Embedding drift, at alpha = 0.01, 768-d embeddings from 16 latent factors plus noise; a reference
of 4,000 vectors (2,000 for the PCA basis, 2,000 compared with each window), windows of 1,000
events. Shifts (``--reps`` windows each) and ``--null`` stationary windows for the false-alarm
rate, the same arrays for every method:

* ``new``: vitmon's sketch test (embedding_drift v3: variance-weighted mean on 16 principal
  axes + residual energy off them, Bonferroni; weighted chi-square and t nulls);
* ``old``: the retired test, kept here on ``detectors.stats.mmd``: a 512-event bottom-k sample of
  the window on 32 principal axes, unbiased MMD^2, 500 permutations (raised to 1/level - 1, at
  most 2,000): its level floor makes it blind at ``--slices`` slices (0.01 / 21 < 1 / 2,001);
* alibi-detect ``MMDDrift`` (pytorch backend, 100 permutations) and Evidently's embedding drift
  (``mmd`` with bootstrap at 1 - alpha), on the 2,000 reference vectors and the whole window,
  run in a subprocess of ``--peer-python`` (alibi-detect is under the Business Source License:
  a benchmark peer only, in its own virtualenv).

Feature drift: 20 features x 100,000 rows per side, vitmon's grid-sketch KS vs alibi-detect's
KSDrift and Evidently's DataDriftPreset(ks).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ALPHA = 0.01
N_REF, N_WIN, DIM = 2000, 1000, 768
N_FEAT, N_ROWS = 20, 100_000
FEAT_SHIFT = 0.012  # mean shift of 2 of 20 features, in standard deviations
#: name -> (mean shift of factor 0 in its SDs, scale of factor 0, noise SD, share of events moved)
SHIFTS = {"null": (0.0, 1.0, 1.0, 1.0), "mean 0.15 sd": (0.15, 1.0, 1.0, 1.0),
          "mean 0.3 sd": (0.3, 1.0, 1.0, 1.0), "scale x1.15": (0.0, 1.15, 1.0, 1.0),
          "noise sd x1.05": (0.0, 1.0, 1.05, 1.0), "10% of events +1.5 sd": (1.5, 1.0, 1.0, 0.1)}


# --- data -------------------------------------------------------------------------------------

def embeddings(rng: np.random.Generator, mix: np.ndarray, n: int,
               shift: tuple[float, float, float, float] = SHIFTS["null"]) -> np.ndarray:
    mean, scale, noise, share = shift
    z = rng.normal(0, 1, (n, mix.shape[0]))
    moved = rng.random(n) < share
    z[moved, 0] = z[moved, 0] * scale + mean
    return (z @ mix + rng.normal(0, noise, (n, mix.shape[1]))).astype(np.float32)


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


def _batch(x: np.ndarray, w: int):
    from detectors.testing import make_batch
    return make_batch(len(x), event_id=np.array([f"w{w}-{i}" for i in range(len(x))],
                                                dtype=object), embedding=x)


def new_test(profile, windows, n_slices: int = 1) -> dict:
    """vitmon's sketch test: observe (against the reference) + evaluate, per window."""
    from detectors.embedding_drift import EmbeddingDrift
    from detectors.testing import context

    det = EmbeddingDrift(domain_classifier="never")
    times, detected, p_values, size = [], [], [], 0
    for w, x in enumerate(windows):
        batch = _batch(x, w)
        ctx = context(profile, ALPHA, n_tests=n_slices, window_start_ms=w)
        t = time.perf_counter()
        state = det.observe_with_reference(det.empty(), batch, ctx.reference)
        main = det.evaluate(state, ctx)[0]
        times.append(time.perf_counter() - t)
        detected.append(main.status.value == "alert")
        p_values.append(main.details["p_value_raw"])
        size = max(size, len(det.dumps(state)))
    return {"decision_s": float(np.median(times)), "detected": detected, "p": p_values,
            "state_bytes": size}


def old_test(profile, windows, n_slices: int = 1, sample_size: int = 512, q: int = 32,
             n_permutations: int = 500, max_permutations: int = 2000) -> dict:
    """The retired embedding test (vitmon <= embedding_drift v1), step for step: bottom-k sample
    of the window, PCA-q projection of it and of the reference sample, permutation MMD^2 at
    ``alpha / n_slices`` with the permutation count capped at ``max_permutations``."""
    from detectors.stats import embeddings as emb
    from detectors.stats.mmd import mmd_permutation_test

    ref = profile["embedding"]
    basis = np.asarray(ref["pca_components"])[:, :q]
    x_ref = emb.project(ref["sample"], ref["pca_mean"], basis)
    sigma2 = float(np.asarray(ref["bandwidth_sigma2"])[q - 1])
    a_key = ALPHA / n_slices
    b = min(max_permutations, max(n_permutations, math.ceil(1 / a_key - 1e-9) - 1))
    times, detected, p_values = [], [], []
    for w, x in enumerate(windows):
        ids = np.array([f"w{w}-{i}" for i in range(len(x))], dtype=object)
        t = time.perf_counter()
        keep = emb.bottom_k(emb.event_hashes(ids), ids, sample_size)
        x_win = emb.project(x[keep], ref["pca_mean"], basis)
        res = mmd_permutation_test(x_ref, x_win, b, seed=w, sigma2=sigma2)
        times.append(time.perf_counter() - t)
        detected.append(res.p_value <= a_key)
        p_values.append(res.p_value)
    state = sample_size * (DIM * 4 + 8 + 16)  # the v1 state kept the raw float32 sample
    return {"decision_s": float(np.median(times)), "detected": detected, "p": p_values,
            "state_bytes": state, "n_permutations": b}


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

def _timed(decide, windows) -> dict:
    times, det = [], []
    for x in windows:
        t = time.perf_counter()
        det.append(bool(decide(x)))
        times.append(time.perf_counter() - t)
    return {"decision_s": float(np.median(times)), "detected": det}


def peer_worker(workdir: Path) -> dict:
    out: dict = {}
    emb_ref = np.load(workdir / "emb_ref.npy").astype(np.float32)
    emb_win = np.load(workdir / "emb_win.npy", mmap_mode="r")
    feat_ref = np.load(workdir / "feat_ref.npy")
    feat_win = np.load(workdir / "feat_win.npy")
    windows = (np.asarray(x, np.float32) for x in emb_win)
    try:
        from alibi_detect.cd import KSDrift, MMDDrift
        mmd = MMDDrift(emb_ref, backend="pytorch", p_val=ALPHA, n_permutations=100)
        out["alibi_mmd"] = _timed(lambda x: mmd.predict(x)["data"]["is_drift"], windows)
        ks = KSDrift(feat_ref, p_val=ALPHA, correction="bonferroni")
        out["alibi_ks"] = _timed(lambda x: ks.predict(x)["data"]["is_drift"], feat_win)
    except ImportError as exc:
        out["alibi_error"] = repr(exc)
    try:
        import pandas as pd
        from evidently import DataDefinition, Dataset, Report
        from evidently.legacy.metrics.data_drift.embedding_drift_methods import mmd
        from evidently.presets import DataDriftPreset
        method = mmd(bootstrap=True, quantile_probability=1 - ALPHA)  # its test at level alpha
        ref_df = pd.DataFrame(emb_ref)
        out["evidently_mmd"] = _timed(lambda x: method(pd.DataFrame(x), ref_df)[1],
                                      (np.asarray(x, np.float32) for x in emb_win))
        cols = [f"f{j:02d}" for j in range(N_FEAT)]
        dd = DataDefinition(numerical_columns=cols)
        ref_ds = Dataset.from_pandas(pd.DataFrame(feat_ref, columns=cols), data_definition=dd)

        def ks_decision(x):
            snap = Report([DataDriftPreset(method="ks", threshold=ALPHA)]).run(
                Dataset.from_pandas(pd.DataFrame(x, columns=cols), data_definition=dd), ref_ds)
            pvals = [m["value"] for m in snap.dict()["metrics"]
                     if m["metric_name"].startswith("ValueDrift")]
            return min(pvals) <= ALPHA / N_FEAT  # the same Bonferroni rule as vitmon
        out["evidently_ks"] = _timed(ks_decision, feat_win)
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
    profile["slices"] = {f"s{s}": dict(profile) for s in range(3)}
    for label, det, n_window, n_slices in cal.CASES:
        rate = cal.alarm_rate(det, traffic, profile, n_window, n_slices, seed=11)
        print(f"  {label:28s} {rate:.4f} over {n_windows} windows (2*alpha = {2 * ALPHA})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer-python", default=sys.executable,
                    help="interpreter with evidently and/or alibi-detect installed")
    ap.add_argument("--reps", type=int, default=20, help="windows per shift (power)")
    ap.add_argument("--null", type=int, default=100, help="stationary windows (false alarms)")
    ap.add_argument("--peer-reps", type=int, default=4,
                    help="of those, windows per shift the peers also run (alibi: ~1 min each)")
    ap.add_argument("--peer-null", type=int, default=8, help="null windows the peers also run")
    ap.add_argument("--slices", type=int, default=21, help="slice count of the many-slice line")
    ap.add_argument("--calibration", type=int, default=0, help="also measure false-alarm rates")
    ap.add_argument("--no-peers", action="store_true", help="vitmon's own tests only")
    ap.add_argument("--no-old-slices", action="store_true",
                    help="skip the old test at --slices slices (its slowest line; it cannot "
                         "reject there: 2,000 permutations floor its p-value at 5.0e-4)")
    ap.add_argument("--peer-worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.peer_worker:
        print(json.dumps(peer_worker(args.peer_worker), default=lambda o: o.item()))
        return
    rng = np.random.default_rng(0)
    mix = rng.normal(0, 1, (16, DIM))
    # float16 as producers send them (embedding_b64, f16); every method sees the same values.
    f16 = lambda x: x.astype(np.float16).astype(np.float32)  # noqa: E731
    emb_a, emb_b = f16(embeddings(rng, mix, N_REF)), f16(embeddings(rng, mix, N_REF))
    counts = {name: args.null if name == "null" else args.reps for name in SHIFTS}
    labels = [name for name in SHIFTS for _ in range(counts[name])]
    emb_win = [f16(embeddings(rng, mix, N_WIN, SHIFTS[name])) for name in labels]
    feat_ref = features(rng, N_ROWS, 0.0)
    feat_win = [features(rng, N_ROWS, FEAT_SHIFT) for _ in range(min(args.reps, 10))]
    profile, build = embedding_profile(emb_a, emb_b)
    # Every method compares windows with the same 2,000 reference vectors: the ones vitmon's
    # profile keeps (the other 2,000 only fit its PCA basis).
    emb_ref = profile["embedding"]["sample"]
    results = {"new": new_test(profile, emb_win), "old": old_test(profile, emb_win),
               f"new_{args.slices}": new_test(profile, emb_win, args.slices),
               "vitmon_features": vitmon_features(feat_ref, feat_win), "build_s": build}
    if not args.no_old_slices:
        results[f"old_{args.slices}"] = old_test(profile, emb_win, args.slices)
    seen: dict[str, int] = {}
    peer_idx = []
    for i, name in enumerate(labels):
        seen[name] = seen.get(name, 0) + 1
        if seen[name] <= (args.peer_null if name == "null" else args.peer_reps):
            peer_idx.append(i)
    results["peer_idx"] = peer_idx
    if not args.no_peers:
        with tempfile.TemporaryDirectory() as tmp:
            for name, arr in [("emb_ref", emb_ref),
                              ("emb_win", np.stack([emb_win[i] for i in peer_idx])),
                              ("feat_ref", feat_ref), ("feat_win", np.stack(feat_win))]:
                np.save(Path(tmp) / f"{name}.npy", arr)
            proc = subprocess.run([args.peer_python, __file__, "--peer-worker", tmp],
                                  capture_output=True, text=True)
            if proc.returncode == 0:
                results.update(json.loads(proc.stdout.strip().splitlines()[-1]))
            else:
                print("peer run failed:", proc.stderr.strip().splitlines()[-3:], file=sys.stderr)
    report(results, labels, args)
    if args.calibration:
        print("\nfalse-alarm rate on stationary traffic, alpha = 0.01:")
        calibration(args.calibration)


def report(r: dict, labels: list[str], args: argparse.Namespace) -> None:
    shifts = list(SHIFTS)
    lab = np.array(labels)
    methods = [("new", "vitmon sketch v3 (new)"), ("old", "vitmon 512-sample MMD (old)"),
               (f"new_{args.slices}", f"new, 1 of {args.slices} slices"),
               (f"old_{args.slices}", f"old, 1 of {args.slices} slices"),
               ("alibi_mmd", "alibi-detect MMDDrift"), ("evidently_mmd", "Evidently mmd")]
    print(f"embedding drift, {DIM}d f16, reference {N_REF} (+{N_REF} PCA), windows of {N_WIN}, "
          f"alpha {ALPHA}; rates over {args.reps} windows per shift, {args.null} null windows "
          f"(peers: the first {args.peer_reps} and {args.peer_null} of them)")
    head = "".join(f"{s[:14]:>15s}" for s in shifts)
    print(f"  {'method':32s}{head}{'ms/window':>11s}{'state B':>10s}")
    idx = np.array(r["peer_idx"], int)
    for key, name in methods:
        if key not in r:
            continue
        det = np.array(r[key]["detected"], bool)
        sub = lab if len(det) == len(lab) else lab[idx]  # the peers ran a subset
        rates = "".join(f"{det[sub == s].mean():15.2f}" for s in shifts)
        size = r[key].get("state_bytes")
        print(f"  {name:32s}{rates}{r[key]['decision_s'] * 1000:11.1f}"
              f"{size if size else '':>10}")
    new, old = (np.array(r[k]["detected"], bool) for k in ("new", "old"))
    ratio = "".join(f"{_ratio(new[lab == s].mean(), old[lab == s].mean()):>15s}" for s in shifts)
    print(f"  {'new / old':32s}{ratio}{r['old']['decision_s'] / r['new']['decision_s']:10.0f}x"
          f" faster")
    idx = np.array(r["peer_idx"], int)
    for peer, name in (("alibi_mmd", "new / alibi"), ("evidently_mmd", "new / Evidently")):
        if peer in r:  # on the windows the peer ran
            other, sub, mine = np.array(r[peer]["detected"], bool), lab[idx], new[idx]
            ratio = "".join(f"{_ratio(mine[sub == s].mean(), other[sub == s].mean()):>15s}"
                            for s in shifts)
            print(f"  {name:32s}{ratio}{r[peer]['decision_s'] / r['new']['decision_s']:10.0f}x"
                  f" faster")
    b_many = min(2000, max(500, math.ceil(args.slices / ALPHA - 1e-9) - 1))
    print(f"  (null column = false-alarm rate; the old test at {args.slices} slices uses "
          f"{b_many} permutations: its smallest p-value {1 / (b_many + 1):.2e} vs "
          f"alpha/{args.slices} = {ALPHA / args.slices:.2e}; reference build "
          f"{r['build_s']:.2f} s once)")
    print(f"feature drift, {N_FEAT} features x {N_ROWS} rows per side, shift {FEAT_SHIFT} sd "
          f"on 2 features, Bonferroni at {ALPHA}:")
    ours = r["vitmon_features"]
    for key, name in (("vitmon_features", "vitmon (grid sketch KS)"),
                      ("alibi_ks", "alibi-detect KSDrift"),
                      ("evidently_ks", "Evidently DataDriftPreset(ks)")):
        if key in r:
            print(f"  {name:32s} power {np.mean(r[key]['detected']):4.2f}  "
                  f"{r[key]['decision_s'] * 1000:9.1f} ms  "
                  f"{r[key]['decision_s'] / ours['decision_s']:6.1f}x vitmon's time")
    for key in ("alibi_error", "evidently_error"):
        if key in r:
            print(f"  {key}: {r[key]}")


def _ratio(a: float, b: float) -> str:
    return "-" if b == 0 and a == 0 else "inf" if b == 0 else f"{a / b:.2f}"


if __name__ == "__main__":
    main()
