"""Who a request comes from: the address a web request is known by.

Fair sharing of the model and the login lockout both key on it.
"""

from __future__ import annotations


def client_address(request, behind_proxy: bool) -> str:
    """Returns the address of the client that sent ``request`` (a Starlette
    or Gradio request: anything with ``headers`` and ``client``).

    Behind the proxy, the last entry of X-Forwarded-For: the address the
    nearest proxy, which we trust, saw. Earlier entries are whatever the
    client wrote, so anyone could claim any address with them. Otherwise the
    connection's own peer; the header is ignored, since without a proxy in
    front the client wrote all of it.
    """
    if behind_proxy:
        forwarded = request.headers.get("x-forwarded-for", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last
    peer = getattr(request, "client", None)
    return getattr(peer, "host", None) or "unknown"
