"""User-facing errors.

Anything a user can cause (a bad file, an unknown option, a missing download) raises a subclass of
`ArchftError`; the CLI prints it as one line and exits non-zero, without a traceback. Bugs stay
ordinary exceptions so that they keep their tracebacks.
"""


class ArchftError(Exception):
    """Base class of errors caused by user input; the message names the problem and the file."""


class ConfigError(ArchftError):
    """Unknown option, bad value or bad configuration file."""


class WeightsError(ArchftError):
    """Pretrained weights missing, unreadable or not matching the model."""


class DataError(ArchftError):
    """Dataset missing, corrupt or malformed."""


class ArchitectureError(ArchftError):
    """`architecture.json` unreadable or not matching its search space."""
