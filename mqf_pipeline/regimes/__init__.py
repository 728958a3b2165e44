"""Market regimes: the walk-forward filtered Gaussian HMM and its mapping to risk regimes."""
