"""Backtests and replays: stored or CSV readings through forewarn's live path, simulated.

* :mod:`forewarn.backtest.live`: the whole live path on a simulated clock, in memory.
* :mod:`forewarn.backtest.engine`: ``forewarn backtest`` (a draft against the current
  rules; the JSON it answers with is described there); :mod:`~forewarn.backtest.report`
  and :mod:`~forewarn.backtest.chart` compute what it shows.
* :mod:`forewarn.backtest.playback`: ``forewarn replay`` (what the rules do to readings).

The names below load on first use, so the command line starts without the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from forewarn.backtest.playback import (
        Episode,
        ReplayError,
        ReplayReport,
        replay,
        stored_readings,
    )

__all__ = ["Episode", "ReplayError", "ReplayReport", "replay", "stored_readings"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        import importlib

        return getattr(importlib.import_module("forewarn.backtest.playback"), name)
    raise AttributeError(name)
