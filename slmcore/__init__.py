"""slmcore: fast, exact inference for small language models on one machine."""

from slmcore.errors import *  # noqa: F401,F403
from slmcore.errors import __all__ as _error_names
from slmcore.generate import Completion
from slmcore.llm import LLM
from slmcore.sampling import SamplingParams

__version__ = "0.1.0"

__all__ = ["LLM", "SamplingParams", "Completion", "__version__", *_error_names]
