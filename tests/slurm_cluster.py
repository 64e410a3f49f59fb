"""A real single-node Slurm cluster for the tests: Debian's slurm-wlm (slurmctld + slurmd) with munge, installed
with apt-get when missing, configured for this host under a tmp folder (its own ports, munge socket, state and
spool dirs: several can run side by side) and started as root. Containers have no systemd or writable cgroups, so
processes are tracked from /proc (proctrack/linuxproc) and not bound (task/none); slurmd takes the node from the
config (config_overrides) instead of checking the hardware."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
PARTITION = "debug"


def install() -> str | None:
    """Install slurm-wlm and munge with apt-get when slurmctld is missing; the reason when that cannot be done."""
    if shutil.which("slurmctld") and shutil.which("munged"):
        return None
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return "slurmctld is missing and apt-get cannot install it here (needs root on Debian/Ubuntu)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    policy = subprocess.run(["apt-cache", "policy", PACKAGES[0]], capture_output=True, text=True, env=env)
    if "Candidate: (none)" in policy.stdout or not policy.stdout.strip():  # a fresh image: no package lists yet
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, env=env, timeout=300)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if proc.returncode or not shutil.which("slurmctld"):
        return f"`{' '.join(cmd)}` failed (no network or mirror?): {(proc.stderr or proc.stdout).strip()[-400:]}"
    return None


def _die_with_parent() -> None:
    """In the daemon, before exec: SIGTERM when the test process dies, so a killed run leaves no cluster behind
    (prctl PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mem_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    raise RuntimeError("no MemTotal in /proc/meminfo")


class SlurmCluster:
    """slurmctld + slurmd + munged for this host, all state under `root`; `env` points clients at it."""

    def __init__(self, root: Path):
        self.root = root
        self.host = socket.gethostname().split(".")[0]
        self.conf = root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.procs: list[subprocess.Popen] = []

    def write_config(self) -> None:
        r = self.root
        for d in ("state", "spool", "munge"):
            (r / d).mkdir(parents=True, exist_ok=True)
        (r / "munge").chmod(0o700)  # munged refuses a socket or key in a folder others can write
        key = r / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        cpus = len(os.sched_getaffinity(0))  # what nproc says
        mem = int(_mem_mb() * 0.9)  # leave the OS its share; --mem-per-cpu requests are scheduled against this
        self.conf.write_text(f"""\
ClusterName=datakit-test
SlurmctldHost={self.host}(127.0.0.1)
SlurmctldPort={_free_port()}
SlurmdPort={_free_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={r}/munge/munge.socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool
SlurmctldPidFile={r}/slurmctld.pid
SlurmdPidFile={r}/slurmd.pid
SlurmctldLogFile={r}/slurmctld.log
SlurmdLogFile={r}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=600
SchedulerParameters=batch_sched_delay=0
NodeName={self.host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem} State=UNKNOWN
PartitionName={PARTITION} Nodes={self.host} Default=YES MaxTime=INFINITE State=UP
""")

    def start(self, timeout: float = 60) -> None:
        self.write_config()
        r = self.root
        self._spawn(["munged", "-F", "--force", f"--socket={r}/munge/munge.socket",
                     f"--key-file={r}/munge/munge.key", f"--pid-file={r}/munge/munged.pid",
                     f"--log-file={r}/munge/munged.log", f"--seed-file={r}/munge/munged.seed"], "munged")
        self._wait(lambda: (r / "munge" / "munge.socket").exists(), timeout, "munged", r / "munge" / "munged.log")
        self._spawn(["slurmctld", "-D", "-i", "-f", str(self.conf)], "slurmctld")
        self._spawn(["slurmd", "-D", "-N", self.host, "-f", str(self.conf)], "slurmd")
        self._wait(self.node_idle, timeout, "the node to be idle in sinfo", r / "slurmd.log")

    def node_idle(self) -> bool:
        proc = subprocess.run(["sinfo", "-h", "-N", "-o", "%T"], capture_output=True, text=True, env=self.env)
        return proc.returncode == 0 and proc.stdout.split() == ["idle"]

    def _spawn(self, cmd: list[str], name: str) -> None:
        log = (self.root / f"{name}.out").open("wb")
        self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                           preexec_fn=_die_with_parent))

    def _wait(self, ready, timeout: float, what: str, log: Path) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            dead = [p for p in self.procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:] if log.is_file() else ""
                outs = "".join((self.root / f"{n}.out").read_text(errors="replace")[-1000:]
                               for n in ("munged", "slurmctld", "slurmd") if (self.root / f"{n}.out").is_file())
                self.stop()
                raise RuntimeError(f"Slurm test cluster: gave up waiting for {what} "
                                   f"({'a daemon exited' if dead else f'{timeout:.0f} s'}); {log}:\n{tail}\n{outs}")
            time.sleep(0.2)

    def stop(self) -> None:
        for p in reversed(self.procs):  # slurmd, slurmctld, then munged (which they talk to while stopping)
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        self.procs.clear()
