"""What people do with a finished project's models: predict, model cards, leaderboards, comparisons, summaries.

Plain Python (no textual, no printing): the CLI prints what these functions return, and the TUI shows it.
"""
