"""Engines give up on a PostgreSQL server that accepts a connection and never answers."""

from __future__ import annotations

import socket
import threading

import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from models.engine import create_db_engine


def test_a_silent_postgresql_server_is_given_up_instead_of_hanging() -> None:
    with socket.socket() as silent:  # the kernel completes the handshake; nobody speaks
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        engine = create_db_engine(
            f"postgresql+psycopg://postgres@127.0.0.1:{port}/test", busy_timeout=1.0
        )
        outcome: list[BaseException] = []

        def connect() -> None:
            try:
                with engine.connect() as connection:
                    connection.execute(text("SELECT 1"))
            except BaseException as exc:  # whatever it is, the test checks it
                outcome.append(exc)

        attempt = threading.Thread(target=connect, daemon=True)
        attempt.start()
        attempt.join(timeout=30)  # without connect_timeout libpq waits indefinitely
        engine.dispose()
    if attempt.is_alive():
        pytest.fail("the connection attempt to a silent server was still hanging after 30 s")
    assert len(outcome) == 1 and isinstance(outcome[0], OperationalError)
    assert "timeout" in str(outcome[0]).lower()
