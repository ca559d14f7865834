"""The model details screen: extracted on demand in a worker thread, never blocking the UI."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Static

from milo_tui.tui.extraction import ModelDetails
from milo_tui.runstate import ModelRow
from milo_tui.tui.widgets import details as render


class DetailScreen(Screen[None]):
    DEFAULT_CSS = """
    DetailScreen #detail-title { height: 1; background: $primary 30%; padding: 0 1; }
    DetailScreen VerticalScroll { height: 1fr; }
    DetailScreen .section { border: round $primary 50%; padding: 0 1; height: auto; }
    DetailScreen Horizontal { height: auto; }
    DetailScreen #detail-metrics { width: 45; }
    DetailScreen #detail-confusion { width: 1fr; }
    """
    BINDINGS = [
        Binding("escape,backspace", "back", "Back"),
        Binding("e", "app.export", "Export"),
        Binding("d", "app.predict", "Predict on a CSV"),
        Binding("n", "next_curve", "Next ROC"),
        Binding("q", "app.quit_app", "Quit"),
    ]

    def __init__(self, row: ModelRow) -> None:
        super().__init__()
        self.row = row
        self.details: ModelDetails | None = None
        self.curve_index = 0

    def compose(self) -> ComposeResult:
        yield Static(Text(f"{self.row.key}  ({self.row.kind})", no_wrap=True, overflow="ellipsis"), id="detail-title")
        with VerticalScroll(id="detail-body"):
            yield Static(Text(f"Extracting {self.row.model_key} from its archive…"), id="detail-pipeline", classes="section")
            with Horizontal():
                yield Static(id="detail-metrics", classes="section")
                yield Static(id="detail-confusion", classes="section")
            yield Static(id="detail-roc", classes="section")
            yield Static(id="detail-per-class", classes="section")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#detail-pipeline").border_title = "Pipeline"
        self.query_one("#detail-metrics").border_title = "Metrics (test set)"
        self.query_one("#detail-confusion").border_title = "Confusion matrix"
        self.query_one("#detail-roc").border_title = "ROC curve"
        self.query_one("#detail-per-class").border_title = "Per class"
        self.query_one("#detail-per-class").display = False
        # The worker belongs to the app, not to this screen: leaving the screen must not wait for it.
        self.app.extract_for(self)  # type: ignore[attr-defined]

    def show_details(self, details: ModelDetails) -> None:
        if not self.is_attached or self not in self.app.screen_stack:
            return  # the user went back before the extraction finished
        self.details = details
        self.query_one("#detail-pipeline", Static).update(render.pipeline_text(details))
        self.query_one("#detail-metrics", Static).update(render.metrics_table(details))
        self.query_one("#detail-confusion", Static).update(render.confusion_table(details))
        per_class = render.per_class_table(details)
        widget = self.query_one("#detail-per-class", Static)
        widget.display = per_class is not None
        if per_class is not None:
            widget.update(per_class)
        self.draw_curve()

    def draw_curve(self) -> None:
        if self.details is None:
            return
        curves = render.roc_curves(self.details)
        widget = self.query_one("#detail-roc", Static)
        if not curves:
            widget.update(Text("no ROC curve recorded for this model"))
            return
        title, roc = curves[self.curve_index % len(curves)]
        if len(curves) > 1:
            title += f"  ({self.curve_index % len(curves) + 1}/{len(curves)}, n: next)"
        auc = self.details.row.metric("roc_auc") if len(curves) == 1 else None
        width = max(20, min(60, self.size.width - 6))
        widget.update(render.roc_text(title, roc, width, 11, self.app.palette, auc))  # type: ignore[attr-defined]

    def action_next_curve(self) -> None:
        self.curve_index += 1
        self.draw_curve()

    def action_back(self) -> None:
        self.dismiss(None)
