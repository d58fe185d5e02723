"""Models are built offline: no pretrained weights, no backbone weights, no network connection.

A model name or argument can come from an untrusted checkpoint, and some library builders fetch
weights unless told not to (torchvision's detection models download their backbone's ImageNet
weights even with `weights=None`: that is `weights_backbone`). `download_switches` turns off every
such switch a builder declares, and `no_network` refuses, with one line, a build that still tries
to open an internet connection, before anything is sent.
"""

from __future__ import annotations

import contextlib
import inspect
import socket
from collections.abc import Callable, Iterator

from prunelora.errors import InvalidInputError

_INTERNET = (socket.AF_INET, socket.AF_INET6)


class NetworkRefusedError(InvalidInputError):
    """Something tried to open an internet connection while a model was built."""


def download_switches(builder: Callable) -> dict[str, object]:
    """The keyword arguments that turn off every weight download `builder` declares: `weights*`
    (torchvision: `weights`, `weights_backbone`) set to None, `pretrained*` (older torchvision,
    timm) set to False."""
    try:
        parameters = inspect.signature(builder).parameters
    except (TypeError, ValueError):  # a builtin or C builder: it declares nothing we can see
        return {}
    off: dict[str, object] = {}
    for name, parameter in parameters.items():
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        if name.startswith("weights"):
            off[name] = None
        elif name.startswith("pretrained") and parameter.default is not None:
            off[name] = False
    return off


@contextlib.contextmanager
def no_network(what: str) -> Iterator[None]:
    """Refuse any internet connection (and name lookup) made while the block runs.

    Local sockets (AF_UNIX: the pipes of process pools) are left alone. The guard is process-wide
    while it is active, which is only while a model is being built (milliseconds).

    Args:
        what: what is being built, for the message (e.g. `torchvision:resnet18`).

    Raises:
        NetworkRefusedError: the block tried to reach the network.
    """
    def refuse(address: object = None) -> NetworkRefusedError:
        shown = str(address)[:80] if address is not None else "a host name"
        return NetworkRefusedError(f"building {what} tried to open a network connection ({shown}), e.g. to "
                                   "download weights; prunelora builds models offline with random weights: refused")

    original_connect, original_connect_ex = socket.socket.connect, socket.socket.connect_ex
    original_create, original_getaddrinfo = socket.create_connection, socket.getaddrinfo

    def connect(self: socket.socket, address: object) -> None:
        if self.family in _INTERNET:
            raise refuse(address)
        return original_connect(self, address)

    def connect_ex(self: socket.socket, address: object) -> int:
        if self.family in _INTERNET:
            raise refuse(address)
        return original_connect_ex(self, address)

    def create_connection(address: object, *args: object, **kwargs: object) -> socket.socket:
        raise refuse(address)

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> list:
        raise refuse(host)

    socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
    socket.create_connection, socket.getaddrinfo = create_connection, getaddrinfo
    try:
        yield
    finally:
        socket.socket.connect, socket.socket.connect_ex = original_connect, original_connect_ex
        socket.create_connection, socket.getaddrinfo = original_create, original_getaddrinfo
