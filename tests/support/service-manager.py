#!/usr/bin/env python3
"""The part of systemd's service manager a restart test needs, for machines whose PID 1 is
not systemd: socket units (the manager binds the listening sockets and keeps them across
restarts), Type=notify readiness, and the file-descriptor store (FDSTORE=1, FDNAME=,
FDSTOREREMOVE=1, FileDescriptorStoreMax=), written from their documentation
(sd_listen_fds(3), sd_notify(3), systemd.io/FILE_DESCRIPTOR_STORE).

    service-manager.py --socket NAME=PATH ... [--fdstore-max N] [--owner USER] -- CMD...

Starts CMD with the sockets as LISTEN_FDS (names in LISTEN_FDNAMES, in the order given)
followed by the stored descriptors, and NOTIFY_SOCKET. Reads commands on stdin, one per
line, and answers each on stdout with one line:

    restart   SIGTERM, wait for the exit (35 s, then SIGKILL), start again with the sockets
              and the store, wait for READY=1: "restarted pid=P stored=N down_ms=T"
    stop      SIGTERM, wait, close everything, exit: "stopped"

The first line printed is "ready pid=P" once the first process has sent READY=1; any failure
is one line starting with "error:", and the manager exits with status 1.
"""

import argparse
import os
import select
import shutil
import signal
import socket
import sys
import tempfile
import time

STOP_TIMEOUT = 35.0
READY_TIMEOUT = 30.0


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class Manager:
    def __init__(self, sockets, fdstore_max, owner, cmd):
        self.cmd = cmd
        self.fdstore_max = fdstore_max
        self.listeners = []  # (name, socket)
        for name, path in sockets:
            if os.path.exists(path):
                os.unlink(path)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.bind(path)
            s.listen(4096)
            if owner:
                shutil.chown(path, owner, owner)
            os.chmod(path, 0o660)
            self.listeners.append((name, s))
        self.notify_dir = tempfile.mkdtemp(prefix="sm-notify-")
        self.notify_path = os.path.join(self.notify_dir, "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        # Any user may send to it (as with systemd's): the service may run as another user.
        os.chmod(self.notify_dir, 0o755)
        os.chmod(self.notify_path, 0o666)
        self.notify.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.store = []  # (name, fd)
        self.pid = None
        self.ready = False

    # --- notifications -----------------------------------------------------------------

    def receive(self, timeout):
        """Handles the notifications that arrive within `timeout` seconds (0: those queued)."""
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.0, deadline - time.monotonic())
            r, _, _ = select.select([self.notify], [], [], left)
            if not r:
                return
            msg, fds, _flags, _addr = socket.recv_fds(self.notify, 4096, 253)
            self.handle(msg.decode("utf-8", "replace"), fds)

    def handle(self, text, fds):
        fields = {}
        for line in text.split("\n"):
            if "=" in line:
                k, v = line.split("=", 1)
                fields[k] = v
        if fields.get("READY") == "1":
            self.ready = True
        if fields.get("FDSTOREREMOVE") == "1":
            name = fields.get("FDNAME", "stored")
            keep = []
            for n, fd in self.store:
                if n == name:
                    os.close(fd)
                else:
                    keep.append((n, fd))
            self.store = keep
        if fields.get("FDSTORE") == "1":
            name = fields.get("FDNAME", "stored")
            for fd in fds:
                if len(self.store) < self.fdstore_max:
                    self.store.append((name, fd))
                else:
                    os.close(fd)
            return
        for fd in fds:
            os.close(fd)

    def prune_hung_up(self):
        """Closes stored descriptors whose peer hung up, as the manager does (POLLHUP/POLLERR)."""
        if not self.store:
            return
        poller = select.poll()
        for _, fd in self.store:
            poller.register(fd, select.POLLHUP | select.POLLERR)
        dead = {fd for fd, ev in poller.poll(0) if ev & (select.POLLHUP | select.POLLERR | select.POLLNVAL)}
        keep = []
        for n, fd in self.store:
            if fd in dead:
                os.close(fd)
            else:
                keep.append((n, fd))
        self.store = keep

    # --- the service process -------------------------------------------------------------

    def start(self):
        passed = [(n, s.fileno()) for n, s in self.listeners] + list(self.store)
        names = ":".join(n for n, _ in passed)
        env = dict(os.environ)
        env["NOTIFY_SOCKET"] = self.notify_path
        env["LISTEN_FDS"] = str(len(passed))
        env["LISTEN_FDNAMES"] = names
        self.ready = False
        pid = os.fork()
        if pid == 0:
            try:
                count = len(passed)
                high = max([fd for _, fd in passed] + [self.notify.fileno(), 2]) + 1 + count
                for i, (_, fd) in enumerate(passed):
                    os.dup2(fd, high + i)
                for i in range(count):
                    os.dup2(high + i, 3 + i)
                os.closerange(3 + count, high + count + 64)
                os.closerange(high + count + 64, 1 << 20)
                env["LISTEN_PID"] = str(os.getpid())
                os.execve(self.cmd[0], self.cmd, env)
            finally:
                os._exit(127)
        # The manager keeps its copies: the store's fds stay stored until removed.
        self.pid = pid

    def wait_ready(self):
        deadline = time.monotonic() + READY_TIMEOUT
        while not self.ready:
            if time.monotonic() > deadline:
                raise RuntimeError("no READY=1 within %.0fs" % READY_TIMEOUT)
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                raise RuntimeError("the service exited before READY=1 (status %d)" % status)
            self.receive(0.05)

    def stop_process(self):
        os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while True:
            # Notifications first, as the manager handles them before the exit.
            self.receive(0.02)
            done, _ = os.waitpid(self.pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(self.pid, signal.SIGKILL)
                os.waitpid(self.pid, 0)
                break
        self.receive(0)
        self.pid = None

    def restart(self):
        t0 = time.monotonic()
        self.stop_process()
        down = time.monotonic() - t0
        self.prune_hung_up()
        stored = len(self.store)
        self.start()
        self.wait_ready()
        return stored, down

    def close(self):
        for _, fd in self.store:
            os.close(fd)
        self.store = []
        self.notify.close()
        shutil.rmtree(self.notify_dir, ignore_errors=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--socket", action="append", default=[], help="NAME=PATH")
    p.add_argument("--fdstore-max", type=int, default=0)
    p.add_argument("--owner", default="")
    p.add_argument("cmd", nargs="+")
    a = p.parse_args()
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sockets = [tuple(s.split("=", 1)) for s in a.socket]
    m = Manager(sockets, a.fdstore_max, a.owner, a.cmd)
    try:
        m.start()
        m.wait_ready()
        out("ready pid=%d" % m.pid)
        stdin = sys.stdin.fileno()
        buf = b""
        while True:
            r, _, _ = select.select([stdin, m.notify], [], [], 0.5)
            if m.notify in r:
                m.receive(0)
            if m.pid is not None:
                done, status = os.waitpid(m.pid, os.WNOHANG)
                if done:
                    raise RuntimeError("the service exited (status %d)" % status)
            if stdin not in r:
                continue
            chunk = os.read(stdin, 4096)
            if not chunk:
                m.stop_process()
                out("stopped")
                return 0
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                cmd = line.decode().strip()
                if cmd == "restart":
                    stored, down = m.restart()
                    out("restarted pid=%d stored=%d down_ms=%d" % (m.pid, stored, down * 1000))
                elif cmd == "stop":
                    m.stop_process()
                    out("stopped")
                    return 0
                else:
                    out("error: unknown command %r" % cmd)
    except Exception as e:  # one line for the test, then out
        out("error: %s" % e)
        if m.pid is not None:
            try:
                os.kill(m.pid, signal.SIGKILL)
                os.waitpid(m.pid, 0)
            except OSError:
                pass
        return 1
    finally:
        m.close()


if __name__ == "__main__":
    sys.exit(main())
