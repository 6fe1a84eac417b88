"""The sweep stage: hyperparameter searches on Optuna, each trial an ordinary run directory."""
