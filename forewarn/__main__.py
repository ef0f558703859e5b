from __future__ import annotations

from forewarn.cli import main

main()
