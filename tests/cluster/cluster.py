"""A real single-node Slurm (munge, slurmctld, slurmd) in a temporary folder.

``SlurmCluster(folder).start()`` writes a munge key and ``slurm.conf`` (from
``slurm.conf.in`` beside this file) under ``folder``, starts the three daemons in
the foreground as child processes and waits until the node is idle;
:meth:`SlurmCluster.stop` ends them by process id. Every client the tests run
(``sbatch``, ``squeue``, the sweep itself) finds the cluster through ``SLURM_CONF``
(:attr:`SlurmCluster.env`). The daemons run as root, as on this project's CI.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

TEMPLATE = Path(__file__).with_name("slurm.conf.in")
DAEMONS = ("munged", "slurmctld", "slurmd")


def missing() -> str | None:
    """Why a cluster cannot be started here, or None."""
    absent = [d for d in (*DAEMONS, "sbatch", "squeue", "scontrol", "scancel") if shutil.which(d) is None
              and not Path("/usr/sbin", d).exists()]
    if absent:
        return f"Slurm/munge not installed ({', '.join(absent)} missing; apt-get install slurm-wlm munge)"
    if os.geteuid() != 0:
        return "the test cluster's daemons run as root"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _exe(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


class SlurmCluster:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.host = socket.gethostname()
        self.conf = self.folder / "slurm.conf"
        self.procs: list[subprocess.Popen] = []
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    def _write_config(self) -> None:
        for sub in ("munge", "ctld", "slurmd"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder / "munge", 0o700)
        key = self.folder / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        text = TEMPLATE.read_text()
        for field, value in {"HOST": self.host, "STATE": str(self.folder), "CPUS": str(os.cpu_count() or 1),
                             "CTLD_PORT": str(free_port()), "SLURMD_PORT": str(free_port())}.items():
            text = text.replace(f"@{field}@", value)
        self.conf.write_text(text)

    def _spawn(self, *argv: str) -> None:
        log = open(self.folder / f"{Path(argv[0]).name}.out", "wb")
        self.procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                           start_new_session=True))
        log.close()

    def start(self, timeout: float = 30.0) -> SlurmCluster:
        self._write_config()
        m = self.folder / "munge"
        self._spawn(_exe("munged"), "--foreground", "--force", f"--key-file={m / 'munge.key'}",
                    f"--socket={m / 'munge.socket'}", f"--pid-file={m / 'munged.pid'}",
                    f"--log-file={m / 'munged.log'}", f"--seed-file={m / 'munged.seed'}")
        self._wait(lambda: (m / "munge.socket").exists(), timeout, "munged did not create its socket")
        self._spawn(_exe("slurmctld"), "-D", "-i", "-f", str(self.conf))
        self._spawn(_exe("slurmd"), "-D", "-f", str(self.conf))
        self._wait(self.idle, timeout, "the node did not become idle")
        return self

    def idle(self) -> bool:
        r = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, env=self.env)
        return r.returncode == 0 and r.stdout.strip() in ("idle", "mixed", "allocated")

    def _wait(self, ok, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ok():
                return
            dead = [p.args[0] for p in self.procs if p.poll() is not None]
            if dead:
                break
            time.sleep(0.3)
        self.stop()
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in sorted(self.folder.glob("*.out"))
                         + sorted(self.folder.glob("*.log")) + sorted(self.folder.glob("munge/*.log")))
        raise RuntimeError(f"test cluster: {what} (exited: {dead or 'none'})\n{logs}")

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        """A Slurm client command against this cluster."""
        return subprocess.run(argv, capture_output=True, text=True, env=self.env, check=check, timeout=60)

    def stop(self) -> None:
        """Cancel what is left, then stop slurmd, slurmctld and munged (in that order) by process id."""
        if any(p.poll() is None for p in self.procs[1:]):
            subprocess.run(["scancel", "--full", "--user", "root"], env=self.env, capture_output=True, timeout=30)
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs.clear()
