import pytest

from models.enums import OrderStatus, ReadingStatus, ReportStatus
from models.errors import TransitionError
from models.lifecycle import (
    ORDER_TRANSITIONS,
    READING_TRANSITIONS,
    REPORT_TRANSITIONS,
    check_transition,
)


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (ReportStatus.preliminary, ReportStatus.final),
        (ReportStatus.preliminary, ReportStatus.preliminary),
        (ReportStatus.final, ReportStatus.amended),
        (ReportStatus.final, ReportStatus.corrected),
        (ReportStatus.corrected, ReportStatus.amended),
    ],
)
def test_report_moves_forward(current: ReportStatus, new: ReportStatus) -> None:
    assert check_transition(REPORT_TRANSITIONS, current, new) is new


@pytest.mark.parametrize(
    ("current", "new"),
    [
        (ReportStatus.final, ReportStatus.preliminary),
        (ReportStatus.amended, ReportStatus.preliminary),
        (ReportStatus.cancelled, ReportStatus.final),
        (ReportStatus.preliminary, ReportStatus.amended),
    ],
)
def test_report_never_moves_back(current: ReportStatus, new: ReportStatus) -> None:
    with pytest.raises(TransitionError, match=f"from {current.value} to {new.value}"):
        check_transition(REPORT_TRANSITIONS, current, new)


def test_cancel_only_before_start_and_discontinue_only_after() -> None:
    assert check_transition(ORDER_TRANSITIONS, OrderStatus.scheduled, OrderStatus.cancelled)
    assert check_transition(ORDER_TRANSITIONS, OrderStatus.in_progress, OrderStatus.discontinued)
    with pytest.raises(TransitionError):
        check_transition(ORDER_TRANSITIONS, OrderStatus.in_progress, OrderStatus.cancelled)
    with pytest.raises(TransitionError):
        check_transition(ORDER_TRANSITIONS, OrderStatus.scheduled, OrderStatus.discontinued)


def test_terminal_states_have_no_exit() -> None:
    for table in (ORDER_TRANSITIONS, READING_TRANSITIONS, REPORT_TRANSITIONS):
        for status, targets in table.items():
            for target in targets:
                assert target in table, f"{target} reachable from {status} but unknown"
    assert ORDER_TRANSITIONS[OrderStatus.completed] == frozenset()
    assert READING_TRANSITIONS[ReadingStatus.final] == frozenset()


def test_every_status_has_an_entry() -> None:
    assert set(ORDER_TRANSITIONS) == set(OrderStatus)
    assert set(READING_TRANSITIONS) == set(ReadingStatus)
    assert set(REPORT_TRANSITIONS) == set(ReportStatus)
