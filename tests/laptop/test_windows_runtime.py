"""The laptop's runtime needs nothing POSIX-only, so that it runs on the school's Windows laptops.

A subprocess first takes away what Windows lacks: the modules fcntl, pwd, grp, resource,
termios (and the like), os.fork and the other POSIX-only functions, the POSIX-only
signals, select.poll/epoll, and puts a stand-in msvcrt (Windows' file locks) in their
place. Then it imports the laptop runtime (app factory, scheduler, sync client, CLI,
the waitress entry), creates the app, runs CLI commands, one background sync against
a closed port, and serves a page with waitress.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WINDOWS_LIKE = r'''
import os, select, signal, socket, sys, types

for name in ("fcntl", "pwd", "grp", "resource", "termios", "tty", "pty", "posix_ipc",
             "syslog", "crypt", "spwd", "nis", "readline", "curses"):
    sys.modules[name] = None
for name in ("fork", "forkpty", "register_at_fork", "setsid", "setpgid", "getpgid", "killpg",
             "getuid", "geteuid", "getgid", "getegid", "setuid", "setgid", "chown", "lchown",
             "fchown", "sysconf", "uname", "nice", "mkfifo", "mknod", "wait3", "wait4",
             "waitid", "posix_spawn", "posix_spawnp", "sched_setaffinity", "getloadavg"):
    if hasattr(os, name):
        delattr(os, name)
WINDOWS_SIGNALS = {"SIGINT", "SIGTERM", "SIGABRT", "SIGFPE", "SIGILL", "SIGSEGV"}
for name in [n for n in dir(signal) if n.startswith("SIG") and not n.startswith(("SIG_", "SIGRT"))]:
    if name not in WINDOWS_SIGNALS and isinstance(getattr(signal, name), int):
        delattr(signal, name)
for name in ("alarm", "pause", "setitimer", "getitimer", "siginterrupt", "pthread_kill",
             "pthread_sigmask", "sigwait", "sigpending"):
    if hasattr(signal, name):
        delattr(signal, name)
for name in ("poll", "epoll", "devpoll", "kqueue"):
    if hasattr(select, name):
        delattr(select, name)
if hasattr(socket, "AF_UNIX"):
    del socket.AF_UNIX
import time
for name in [n for n in dir(time) if n.startswith(("clock_", "CLOCK_"))] + [
        "pthread_getcpuclockid", "tzset"]:
    if hasattr(time, name):
        delattr(time, name)
# What Windows has for file locks, for code that falls back to it without fcntl. os.name
# stays "posix": the standard library's own Windows branches (pathlib, shutil) need Windows.
msvcrt = types.ModuleType("msvcrt")
msvcrt.LK_NBLCK, msvcrt.LK_UNLCK, msvcrt.LK_LOCK = 2, 0, 1
msvcrt.locking = lambda fd, mode, nbytes: None
sys.modules["msvcrt"] = msvcrt
'''
RUNTIME = r'''
import json, re, sys, threading, urllib.parse, urllib.request
from pathlib import Path
from lapsync.laptop import create_app, scheduler, serve, client
from lapsync.laptop.client import cli, state, transport
from lapsync.laptop.__main__ import main
from waitress import create_server

folder = Path(sys.argv[1])
app = create_app({"SECRET_KEY": "t", "DATABASE": str(folder / "laptop.sqlite"),
                  "INSTANCE_CONFIG_FILE": str(folder / "config.py"), "LOG_DIR": str(folder / "logs"),
                  "CENTRAL_URL": "http://127.0.0.1:9", "CENTRAL_TOKEN": "t", "SYNC_ENABLED": False,
                  "SYNC_INTERVAL": 1})
cli_runner = app.test_cli_runner()
out = {"init": cli_runner.invoke(args=["init-db"]).output,
       "user": cli_runner.invoke(args=["create-user", "ada", "--role", "admin",
                                       "--password", "correct-horse"]).output,
       "status": cli_runner.invoke(args=["sync-status"]).exit_code}
job = app.extensions[scheduler.EXTENSION]
job.run()  # one background sync: central's port is closed, recorded as an error
out["error"] = state.sync_state(__import__("lapsync.laptop.db", fromlist=["connect"]).connect(
    app.config["DATABASE"])).get("last_error", "")
server = create_server(app, host="127.0.0.1", port=0, threads=2)
thread = threading.Thread(target=server.run, daemon=True)
thread.start()
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                     urllib.request.HTTPCookieProcessor())
base = f"http://127.0.0.1:{server.effective_port}"
page = opener.open(f"{base}/login", timeout=10)
out["page"], out["server"] = page.status, page.headers.get("Server")
token = re.search(r'name="csrf_token" value="([^"]+)"', page.read().decode()).group(1)
form = urllib.parse.urlencode({"name": "ada", "password": "correct-horse", "csrf_token": token})
logged_in = opener.open(f"{base}/login", data=form.encode(), timeout=10)  # the login's clock check
out["login"] = urllib.parse.urlparse(logged_in.geturl()).path, logged_in.status
out["laps_page"] = opener.open(f"{base}/", timeout=10).read().decode().count('id="start_number"')
server.close()
out["log"] = (folder / "logs" / "laptop.log").exists()
print(json.dumps(out))
'''


def test_the_laptop_runtime_imports_and_serves_without_posix_only_parts(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLASK_", "LAPSYNC_"))}
    done = subprocess.run([sys.executable, "-c", WINDOWS_LIKE + RUNTIME, str(tmp_path)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-4000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert "Initialised" in out["init"] and "Created admin 'ada'" in out["user"]
    assert out["status"] == 0
    assert "cannot be reached" in out["error"]
    assert out["page"] == 200 and out["server"] == "waitress"
    assert out["login"] == ["/", 200] and out["laps_page"] == 1  # logged in: the lap page
    assert out["log"]
