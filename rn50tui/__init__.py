"""rn50tui: the terminal home of ResNet-50 training jobs."""

__version__ = "0.1.0"
