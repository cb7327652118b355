"""Following central's next event on the laptop: what goes, what stays, what it says."""
from __future__ import annotations

from lapsync.laptop import new_event
from lapsync.laptop.db import PENDING, get_meta, record_change, transaction
from lapsync.laptop.laps import record_lap


def test_the_first_event_is_stored_and_the_next_empties_only_the_last_ones_data(db, runners,
                                                                                tmp_path):
    assert new_event.follow_event(db, "event-1") is False and get_meta(db, "event_id") == "event-1"
    assert new_event.follow_event(db, "event-1") is False
    tom = db.execute("SELECT id FROM user WHERE name = 'tom'").fetchone()[0]
    record_lap(db, 1, tom, 0, confirm=True)
    with transaction(db):
        record_change(db, "user", tom, {"id": tom})     # a user's change after the lap: it stays
        for seq, entity in ((90, "user"), (91, "lap")):
            db.execute("INSERT INTO rejected_change (seq, entity, entity_id, error, message, "
                       "rejected_at) VALUES (?, ?, 'x', 'refused', '', 1)", [seq, entity])
    users = db.execute("SELECT count(*) FROM user").fetchone()[0]
    waiting = db.execute(f"SELECT count(*) FROM change WHERE entity <> 'user' AND {PENDING}"
                         ).fetchone()[0]                 # the roster's runners and the lap
    assert waiting == 4

    assert new_event.follow_event(db, "event-2") is True
    assert get_meta(db, "event_id") == "event-2" and get_meta(db, "pull_cursor") is None
    assert [db.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("lap", "runner")] == [0, 0]
    assert db.execute("SELECT count(*) FROM change WHERE entity <> 'user'").fetchone() == (0,)
    seqs = [r[0] for r in db.execute("SELECT seq FROM change ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1))        # closed up over the changes that went
    assert db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'change'").fetchone() \
        == (seqs[-1],)
    assert db.execute("SELECT count(*) FROM user").fetchone()[0] == users
    assert [r[0] for r in db.execute("SELECT entity FROM rejected_change")] == ["user"]
    notice = new_event.notice(db)
    assert "4 changes of the last event had not reached central" in notice
    kept = list((tmp_path / "backups").glob("event-event-1-*.sqlite"))
    assert len(kept) == 1 and kept[0].name in notice
    new_event.notice_seen(db)
    assert new_event.notice(db) is None
