"""Admin decisions at central reach the log file as well as the decision log."""
from __future__ import annotations

import logging

from sync.decisions import log_decision


def test_a_decision_is_logged_with_who_what_and_on_which_records(central_app, central_db,
                                                                 central_users, caplog):
    caplog.set_level(logging.INFO, logger="sync.decisions")
    with central_app.app_context(), central_db.transaction():
        number = log_decision(central_db, central_users["ada"], "void_lap", ["lap-1"],
                              {"reason": "double count"})
    line = f"decision {number}: void_lap by user {central_users['ada']} on lap-1: " \
           '{"reason": "double count"}'
    assert line in caplog.text
