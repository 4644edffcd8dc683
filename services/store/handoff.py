"""The store replica's side of the local hand-off (services/common/handoff.py): an
abstract Unix socket on which a gateway of the same host asks for a download's open
file. Each request runs the decorated service method as a nameko worker (with the
service's dependencies, as the data port's requests do); the method checks the session
and opens the file, and this entrypoint sends it, then waits for the gateway's report
of the bytes it sent and hands that to the method's ``finish``.

``[store] local_handoff = False`` turns it off: every download then crosses the data
port."""

from __future__ import annotations

import logging
import os
import socket
import uuid

import eventlet
from eventlet.event import Event
from nameko.extensions import DependencyProvider, Entrypoint

from services.common.errors import StoreUnavailable, TesseraError
from services.common.handoff import offer, read_line, refuse

log = logging.getLogger(__name__)

ASK_TIMEOUT = 10.0  # a connection that sends no token in this time is closed


class LocalHandoff(Entrypoint):
    def __init__(self, **kwargs):
        kwargs.setdefault("expected_exceptions", (TesseraError,))
        super().__init__(**kwargs)

    def setup(self):
        self.address = None
        self._listener = self._accepting = None

    def start(self):
        if not self.container.config["TESSERA_CONF"].store.local_handoff:
            return
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        address = f"\0tessera-store-{uuid.uuid4()}"
        listener.bind(address)
        listener.listen(128)
        self._listener, self.address = listener, address
        self._accepting = self.container.spawn_managed_thread(
            self._accept, identifier="local hand-off"
        )

    def stop(self):
        if self._listener is not None:
            self._accepting.kill()  # closing the socket does not wake a green accept()
            self._listener.close()
            self._listener = self.address = None

    def _accept(self) -> None:
        while self._listener is not None:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed by stop()
            self.container.spawn_managed_thread(lambda conn=conn: self._serve(conn))

    def _serve(self, conn: socket.socket) -> None:
        try:
            line = None
            with eventlet.Timeout(ASK_TIMEOUT, False):
                line = read_line(conn, 128)
            if not line:
                return
            token, _, request_id = line.partition(" ")
            answered = Event()
            self.container.spawn_worker(
                self,
                (token,),
                {},
                context_data={"request_id": request_id} if request_id else {},
                handle_result=lambda _ctx, result, exc_info: (
                    answered.send(result, exc_info),
                    (result, exc_info),
                )[1],
            )
            try:
                fd, finish = answered.wait()
            except TesseraError as exc:
                refuse(conn, exc)
                return
            except Exception as exc:  # noqa: BLE001 - answered as the data port does
                log.error("local hand-off failed: %r", exc)
                refuse(conn, StoreUnavailable("The store could not open the image data."))
                return
            sent = 0
            try:
                try:
                    offer(conn, fd)
                finally:
                    os.close(fd)
                report = read_line(conn, 32)  # when the gateway is done (or went away)
                sent = int(report) if report and report.isdigit() else 0
            finally:
                finish(sent)
        except OSError as exc:
            log.info("local hand-off connection failed: %s", exc)
        finally:
            conn.close()


handoff = LocalHandoff.decorator


class HandoffAddress(DependencyProvider):
    """The abstract socket address of this replica's local hand-off (None when off)."""

    def get_dependency(self, worker_ctx) -> str | None:
        for entrypoint in self.container.entrypoints:
            if isinstance(entrypoint, LocalHandoff):
                return entrypoint.address
        return None
