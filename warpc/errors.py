"""Typed errors. Everything a user can cause derives from WarpcError; the CLI turns it into one line, exit 1."""
from __future__ import annotations


class WarpcError(Exception):
    """Base class for user-facing errors (bad input, missing files, designs that do not fit)."""


class ConfigError(WarpcError):
    """An invalid model, training or build configuration."""


class DatasetError(WarpcError):
    """Unknown dataset, missing files, unreadable or inconsistent data."""


class CheckpointError(WarpcError):
    """A corrupt, foreign or incompatible checkpoint."""


class ShapeError(WarpcError):
    """Data whose shape does not match what the model expects."""


class TrainingError(WarpcError):
    """Training cannot continue (e.g. the loss became NaN)."""


class NetlistError(WarpcError):
    """An inconsistent netlist IR (bad references, cycles, truth tables of the wrong size)."""


class ToolchainError(WarpcError):
    """A synthesis / place-and-route / programming tool failed or is missing."""


class ToolTimeoutError(ToolchainError):
    """A tool ran past its time limit and was stopped."""


class DoesNotFitError(ToolchainError):
    """The design needs more resources than the device has."""


class EquivalenceError(WarpcError):
    """Hardware (simulated or synthesised) disagrees with the model."""


class BoardError(WarpcError):
    """Unknown board, or no board / programmer attached."""


class TrainingInterrupted(TrainingError):
    """Training stopped on SIGINT / SIGTERM after saving a resumable state. `exit_code` follows the shell
    convention 128 + signal number (130 for SIGINT, 143 for SIGTERM)."""

    def __init__(self, message: str, signum: int, step: int) -> None:
        super().__init__(message)
        self.signum, self.step, self.exit_code = signum, step, 128 + signum
