"""Several network hosts on one machine: Linux network namespaces on a virtual switch.

One namespace holds a Linux bridge (the switch); every host is a namespace of its own,
joined to the bridge by a veth pair, with ``lo`` up and one address in 10.213.0.0/24.
Both ends of each veth pair are created directly inside their namespaces, so neither
the interfaces nor the addresses ever exist in the root namespace. Namespace names
carry this process's pid, so two runs never share one; interface names only need to
be unique inside their own namespace, and stay short (15 characters at most).

Cutting a host off is what a pulled cable does: its port on the switch goes down.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass

#: the test network; it exists inside this run's namespaces only
SUBNET = "10.213.0"
#: the bridge in the switch namespace
BRIDGE = "br0"
#: each host's end of its veth pair
HOST_INTERFACE = "eth0"


class IpError(RuntimeError):
    """An ``ip`` command failed."""


class NetnsUnavailable(RuntimeError):
    """Namespaces cannot be made here (no ``ip``, not root, no CAP_SYS_ADMIN)."""


@dataclass(frozen=True)
class Host:
    """One network host: a namespace, its address, and its port on the switch."""

    name: str
    netns: str
    address: str
    #: its veth end in the switch namespace, the one a cut takes down
    port: str

    @property
    def exec_prefix(self) -> tuple[str, ...]:
        """Put in front of a command to run it on this host (``ip netns exec`` execs it)."""
        return ("ip", "netns", "exec", self.netns)


def ip(*args: str) -> None:
    """Run one ``ip`` command; a failure raises with what ``ip`` said."""
    out = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if out.returncode != 0:
        raise IpError(f"`ip {' '.join(args)}` failed: {out.stderr.strip()}")


class Network:
    """A switch and some hosts on it, created by :meth:`create`, gone after :meth:`remove`."""

    def __init__(self, names: Iterable[str], tag: str | None = None) -> None:
        self.tag = tag or f"rfq{os.getpid()}"
        self.switch = f"{self.tag}-sw"
        self.hosts = {
            name: Host(name, f"{self.tag}-{name}", f"{SUBNET}.{index}", f"p-{name}"[:15])
            for index, name in enumerate(names, start=2)
        }
        self._made: list[str] = []

    def host(self, name: str) -> Host:
        return self.hosts[name]

    def create(self) -> Network:
        """Make the switch and every host; on any failure undo what was made and raise."""
        if not shutil.which("ip"):
            raise NetnsUnavailable("`ip` (iproute2) is not on PATH")
        try:
            self._add_namespace(self.switch)
            ip("-n", self.switch, "link", "add", BRIDGE, "type", "bridge")
            ip("-n", self.switch, "link", "set", BRIDGE, "up")
            for host in self.hosts.values():
                self._add_host(host)
        except (IpError, OSError, subprocess.SubprocessError) as exc:
            self.remove()
            raise NetnsUnavailable(str(exc)) from None
        return self

    def _add_namespace(self, name: str) -> None:
        ip("netns", "add", name)
        self._made.append(name)
        ip("-n", name, "link", "set", "lo", "up")

    def _add_host(self, host: Host) -> None:
        self._add_namespace(host.netns)
        ip(
            "-n",
            self.switch,
            "link",
            "add",
            host.port,
            "type",
            "veth",
            "peer",
            "name",
            HOST_INTERFACE,
            "netns",
            host.netns,
        )
        ip("-n", self.switch, "link", "set", host.port, "master", BRIDGE)
        ip("-n", self.switch, "link", "set", host.port, "up")
        ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", HOST_INTERFACE)
        ip("-n", host.netns, "link", "set", HOST_INTERFACE, "up")

    def cut(self, name: str) -> None:
        """Take ``name``'s port on the switch down: it reaches nobody, nobody reaches it."""
        ip("-n", self.switch, "link", "set", self.hosts[name].port, "down")

    def restore(self, name: str) -> None:
        """Bring ``name``'s port on the switch back up."""
        ip("-n", self.switch, "link", "set", self.hosts[name].port, "up")

    def restore_all(self) -> None:
        """Every port up again (best effort), e.g. so processes can stop cleanly."""
        for name in self.hosts:
            with contextlib.suppress(IpError, OSError, subprocess.SubprocessError):
                self.restore(name)

    def remove(self) -> None:
        """Delete every namespace this network made; their veth pairs go with them.

        Stop the processes inside first: a namespace whose processes live on loses its
        name here but lingers until they exit.
        """
        for name in reversed(self._made):
            with contextlib.suppress(IpError, OSError, subprocess.SubprocessError):
                ip("netns", "delete", name)
        self._made.clear()

    def leftovers(self) -> list[str]:
        """This network's namespaces that still exist (none after :meth:`remove`)."""
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10)
        names = [line.split()[0] for line in out.stdout.splitlines() if line.strip()]
        return [name for name in names if name.startswith(f"{self.tag}-")]
