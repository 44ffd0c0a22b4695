"""ecgaudit: adversarial-robustness audits of 12-lead ECG classifiers.

Entry points: `ecgaudit.models.load_model`, `ecgaudit.data.load_dataset`,
and the `ecgaudit` command line (`ecgaudit._cli`).
"""

__version__ = "0.1.0"
