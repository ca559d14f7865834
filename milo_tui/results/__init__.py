"""What people do with a finished project's models: predict, model cards, leaderboards, comparisons, summaries.

Plain Python (no textual, no printing): the CLI prints what these functions return, and the TUI shows it.
Each raises BadInputError (one paragraph for the user) on bad input.

- model.open_project_model(project, key) -> ProjectModel: the model with its feature names and classes in
  the user's labels (older projects' encoded models decoded, with a note); model.sklearn_version_note.
- predict.predict_csv(project, data, output, key=None) -> Prediction (chunked; default key: best_model_key).
- compare.compare_models(project, key_a, key_b) -> Comparison (metrics with CIs, McNemar, DeLong).
- leaderboard.ranked / fit_columns / parse_columns / render(rows, columns, Format).
- summary.run_summary(project) -> RunSummary; summary.render(summary) -> lines of text.
- card.model_card(project, key, model_file) -> dict; card_markdown, usage_note, write_card(folder, card).
"""
