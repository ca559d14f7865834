"""Two marked models side by side: the same comparison as `milo compare` (results.compare.compare_models)."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static


def _num(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


def _p(value: float) -> str:
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def comparison_table(result: Any) -> Table:
    """Metrics of A and B with their 95 % CIs, then the paired tests (a results.compare.Comparison)."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("Metric")
    table.add_column("A")
    table.add_column("B")
    for pair in result.metrics:
        cells = [_num(v) + (f" [{_num(ci[0])}, {_num(ci[1])}]" if ci else "")
                 for v, ci in ((pair.a, pair.a_ci), (pair.b, pair.b_ci))]
        table.add_row(pair.name, *cells)
    return table


def tests_text(result: Any) -> Text:
    text = Text()
    for test, stat in ((result.accuracy_test, "chi2"), (result.auc_test, "z")):
        text.append(f"{test.name}", style="bold")
        text.append(f": A {_num(test.a)}, B {_num(test.b)}, A - B = {_num(test.difference)}; "
                    f"{stat} = {_num(test.statistic)}, p = {_p(test.p_value)}\n  {test.detail}\n")
    for note in result.notes:
        text.append(f"note: {note}\n")
    return text


class CompareScreen(Screen[None]):
    DEFAULT_CSS = """
    CompareScreen #compare-title { height: auto; background: $primary 30%; padding: 0 1; }
    CompareScreen .section { border: round $primary 50%; padding: 0 1; height: auto; }
    """
    BINDINGS = [Binding("escape,backspace", "back", "Back"), Binding("q", "app.quit_app", "Quit")]

    def __init__(self, key_a: str, key_b: str) -> None:
        super().__init__()
        self.key_a, self.key_b = key_a, key_b
        self.result: Any = None

    def compose(self) -> ComposeResult:
        yield Static(Text(f"A = {self.key_a}\nB = {self.key_b}"), id="compare-title")
        with VerticalScroll():
            yield Static(Text("Comparing on the test CSV…"), id="compare-metrics", classes="section")
            yield Static(id="compare-tests", classes="section")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#compare-metrics").border_title = "Metrics (95 % CI)"
        self.query_one("#compare-tests").border_title = "Paired tests"
        self.app.compare_for(self)  # type: ignore[attr-defined]

    def show_result(self, result: Any, error: str = "") -> None:
        if error:
            self.query_one("#compare-metrics", Static).update(Text(error))
            return
        self.result = result
        self.query_one("#compare-metrics", Static).update(comparison_table(result))
        self.query_one("#compare-tests", Static).update(tests_text(result))
        self.query_one("#compare-metrics").border_subtitle = f"{result.rows} generalization rows"

    def action_back(self) -> None:
        self.app.pop_screen()
