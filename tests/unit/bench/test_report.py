"""The benchmark's arithmetic and its document: targets, percentiles, the generated section."""

from __future__ import annotations

from pathlib import Path

import pytest

from rfqueue.bench.common import Row, percentile
from rfqueue.bench.report import END, START, Machine, markdown, verdict, write_doc

MACHINE = Machine(2, "Some CPU", "24 GiB", "3.11.7", "7.0.15", "celery 5.7.0", 0.4, 0.6)


@pytest.mark.parametrize(
    ("ratio", "target", "met"),
    [(1.2, "<= 1.2", True), (1.21, "<= 1.2", False), (5.0, ">= 5", True), (4.9, ">= 5", False)],
)
def test_row_meets_its_target(ratio: float, target: str, met: bool) -> None:
    row = Row("r", "a", "b", ratio, target)
    assert row.met is met
    assert verdict(row) == ("met" if met else "MISSED")


def test_row_without_target_is_reported_only() -> None:
    row = Row("r", "a", "b", 3.0)
    assert row.met is None and verdict(row) == "-"


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    assert percentile(list(reversed(values)), 100) == 100.0


def test_markdown_has_command_machine_and_every_row() -> None:
    rows = [Row("router cost", "2 us", "1.9 us", 1.05, "<= 1.2", "5 rounds")]
    text = markdown(rows, MACHINE, "rfqueue bench", 12.0, note="other work was running")
    assert text.startswith(START) and text.endswith(END)
    assert "Command: `rfqueue bench`" in text
    assert "2 cores, Some CPU, 24 GiB memory" in text
    assert "- other work was running" in text
    assert "| router cost | 2 us | 1.9 us | 1.050 | <= 1.2 | met |" in text
    assert "- router cost: 5 rounds." in text


def test_write_doc_replaces_only_the_generated_section(tmp_path: Path) -> None:
    doc = tmp_path / "b.md"
    doc.write_text(f"# B\n\nbefore\n{START}\nold\n{END}\nafter\n")
    write_doc(doc, f"{START}\nnew\n{END}")
    assert doc.read_text() == f"# B\n\nbefore\n{START}\nnew\n{END}\nafter\n"


def test_write_doc_appends_to_a_document_without_markers(tmp_path: Path) -> None:
    doc = tmp_path / "b.md"
    doc.write_text("# B\n\nhand-written\n")
    write_doc(doc, f"{START}\nnew\n{END}")
    assert doc.read_text() == f"# B\n\nhand-written\n\n{START}\nnew\n{END}\n"
