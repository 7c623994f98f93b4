"""Training: one loop for E2E, GLL and ContSup, with crash-safe run directories.

The trainer is imported lazily: `mi_analysis.models` uses `training.losses`, and the trainer uses
the models, so an eager import here would be circular.
"""

__all__ = ["Trainer", "learning_rate", "load_run", "resolve_device", "train"]


def __getattr__(name: str):
    if name in __all__:
        from mi_analysis.training import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'mi_analysis.training' has no attribute {name!r}")
