"""Market regimes: the walk-forward filtered HMM and its mapping to risk regimes.

Modules: ``features`` (market-level daily features, HMM observations), ``hmm`` (forward filter,
Gaussian emissions), ``model`` (the ``RegimeModel`` estimator), ``walk_forward`` (refit schedule,
``filtered_regimes``), ``mapping`` (the §7.2 risk regimes, ``regime_history`` rows).
"""
