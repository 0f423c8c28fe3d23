"""Pure statistics behind the drift detectors: numpy/torch arrays in, numbers out. Imports only
numerical libraries (numpy, scipy, torch, scikit-learn) and its own modules.

No clock, no I/O, no module state. Each module holds one family of statistics:

``histograms``        the fixed-grid histogram sketch (mergeable quantile sketch) and its folds
``univariate``        KS, chi-square, PSI, Wasserstein-1, Jensen-Shannon on counts or samples
``correction``        Bonferroni and Benjamini-Hochberg
``mmd``               kernel MMD^2 with a batched permutation test (torch): embedding_drift v1's
                      test, kept for bench/drift.py's old-vs-new comparison
``sketch``            the embedding sketch: features on the reference basis, fixed-point sums
``subspace``          embedding_drift's test: variance-weighted mean on the principal axes +
                      residual energy off them (weighted chi-square and t nulls, permutations)
``hotelling``         two-sample Hotelling T^2 (F null) and its permutation fallback (v2's test;
                      its whitening gives embedding_drift's Mahalanobis effect size)
``domain_classifier`` cross-validated logistic-regression AUC test
``embeddings``        event-id hashing for the bottom-k reservoir, PCA, cosine distance
"""
