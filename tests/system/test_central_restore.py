"""Central restored from an older backup: laptops notice it by the database's identity.

Central writes after the restore (a roster import, another laptop's push) can take its
change ids past a laptop's pull cursor before the laptop pulls: no id then tells the
laptop, and without the identity it never sent again the laps central lost nor pulled the
runners below its cursor. A real laptop database and central's
real API over HTTP on loopback (live_central).
"""
from __future__ import annotations

import psycopg
import pytest
import requests

from lapsync.laptop.client.push import pending_count
from lapsync.laptop.client.realign import DATABASE
from lapsync.laptop.client.state import sync_once
from lapsync.laptop.client.transport import Central
from lapsync.laptop.db import get_meta
from lapsync.laptop.laps import record_lap
from sync import backup, roster
from sync.db import close_pool
from sync.identity import current_database
from sync.pull import last_change_id
from tests.pg import Outbox, register

LATE_RUNNERS = 12  # more change ids than the laps after the backup took: past the cursor


class CountingCentral(Central):
    """Central as the laptop talks to it, counting the pushes it sends."""

    pushes = 0

    def push(self, body: bytes, follows: int | None = None) -> tuple[int, dict]:
        """POST one batch; count it."""
        self.pushes += 1
        return super().push(body, follows)


def tom(db) -> str:
    """Return the laptop's teacher tom."""
    return db.execute("SELECT id FROM user WHERE name = 'tom'").fetchone()[0]


def central_ids(url: str, table: str) -> list[str]:
    """Return the ids of a table of central's, on a connection of its own."""
    with psycopg.connect(url, autocommit=True) as conn:
        return sorted(r[0] for r in conn.execute(f"SELECT id FROM {table}"))  # a fixed name


def laptop_ids(db, table: str) -> list[str]:
    """Return the ids of a table of the laptop's."""
    return sorted(r[0] for r in db.execute(f"SELECT id FROM {table}"))  # a fixed name


def laps(db, count: int) -> None:
    """Record COUNT laps of runner 1 on the laptop."""
    for _ in range(count):
        record_lap(db, 1, tom(db), 0, confirm=True)


def import_late_runners(central_db, live_central: str, url: str) -> None:
    """The admin imports late runners at central (each a new change id)."""
    rows = "".join(f"Late Runner {n},6b,6\n" for n in range(LATE_RUNNERS))
    roster.import_roster(central_db, f"Name,Klasse,Jahrgang\n{rows}".encode())


def another_laptop_pushes(central_db, live_central: str, url: str) -> None:
    """Another laptop pushes runners it added (each a new change id at central)."""
    outbox = Outbox()
    for n in range(LATE_RUNNERS):
        outbox.runner(500 + n, f"Other Runner {n}")
    answer = requests.post(f"{live_central}/api/v1/push", json=outbox.body(), timeout=10,
                           headers={"Authorization": f"Bearer {register(central_db, 'lap-b')}"})
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize("write", [import_late_runners, another_laptop_pushes])
@pytest.mark.parametrize("typed_since", [False, True])
def test_a_laptop_sends_again_and_pulls_again_after_a_restore_central_wrote_after(
        app, db, tmp_path, central_app, live_central, central_db, pg_url, write, typed_since):
    central = Central(live_central, register(central_db, "laptop-a", manage_users=True))
    roster.add_runner(central_db, 1, "Anna Berg", "5a", 5)
    assert sync_once(db, central).error is None
    laps(db, 2)
    assert sync_once(db, central).error is None
    file = backup.dump(pg_url, tmp_path / "central.dump")
    laps(db, 5)                                          # acknowledged, then lost below
    assert sync_once(db, central).error is None and len(central_ids(pg_url, "lap")) == 7
    cursor, identity = int(get_meta(db, "pull_cursor")), current_database(central_db)

    close_pool(central_app)
    backup.restore(pg_url, file)
    assert len(central_ids(pg_url, "lap")) == 2 and current_database(central_db) != identity
    write(central_db, live_central, pg_url)              # before the laptop's first sync
    assert last_change_id(central_db) > cursor           # no id tells the laptop any more
    if typed_since:
        laps(db, 1)

    result = sync_once(db, central)
    assert result.error is None and pending_count(db) == 0
    assert central_ids(pg_url, "lap") == laptop_ids(db, "lap")   # each lap once: ids are keys
    assert len(laptop_ids(db, "lap")) == 7 + typed_since
    assert central_ids(pg_url, "runner") == laptop_ids(db, "runner")
    assert len(laptop_ids(db, "runner")) == 1 + LATE_RUNNERS
    assert get_meta(db, DATABASE) == current_database(central_db)
    assert sync_once(db, central).pushed == 0                     # and it settles


def test_an_unchanged_identity_changes_nothing(app, db, live_central, central_db, pg_url):
    central = CountingCentral(live_central, register(central_db, "laptop-a"))
    roster.add_runner(central_db, 1, "Anna Berg", "5a", 5)
    assert sync_once(db, central).error is None
    laps(db, 3)
    assert sync_once(db, central).error is None
    mark = db.execute("SELECT pushed_seq FROM outbox_mark").fetchone()[0]
    cursor, pushes = int(get_meta(db, "pull_cursor")), central.pushes
    roster.add_runner(central_db, 2, "Ben Cruz", "5a", 5)  # a write at central: no restore

    result = sync_once(db, central)
    assert result.error is None and result.pushed == 0 and not result.resend
    assert central.pushes == pushes                     # not even an empty push to realign
    assert result.pulled_total == 1 and int(get_meta(db, "pull_cursor")) > cursor
    assert db.execute("SELECT pushed_seq FROM outbox_mark").fetchone()[0] == mark
    assert len(central_ids(pg_url, "lap")) == 3
    assert get_meta(db, DATABASE) == current_database(central_db)


def test_an_older_central_without_an_identity_works_as_before(app, db, live_central, central_db):
    central = CountingCentral(live_central, register(central_db, "laptop-a"))
    roster.add_runner(central_db, 1, "Anna Berg", "5a", 5)
    assert sync_once(db, central).error is None
    known = get_meta(db, DATABASE)
    central_db.execute("DELETE FROM meta WHERE key = 'database_id'")  # as before migration 0011
    laps(db, 2)
    pushes = central.pushes

    result = sync_once(db, central)
    assert result.error is None and result.pushed == 2 and not result.resend
    assert central.pushes == pushes + 1 and get_meta(db, DATABASE) == known
    assert int(get_meta(db, "pull_cursor")) > 0
