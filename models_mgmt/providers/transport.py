"""A lean HTTP/1.1 transport under httpx, for the plain-HTTP model backends on this machine or the LAN.

The providers stream every reply from a backend (Ollama's NDJSON, an OpenAI-compatible server's SSE) and
both send one small chunk per token. Through httpx's default transport (httpcore, anyio, h11) each request
cost about 0.9 ms of CPU and each chunk its own trip up five layers of async generators; the pool also
checked every idle connection with a system call on every request. With fifty replies starting together
that was the largest share of a worker's CPU after the database.

Under httpx's client this transport keeps httpx's requests, responses and errors and replaces only the
wire work; the providers' streamed requests to plain-HTTP backends skip httpx's objects as well and call
`LeanTransport.open` with the request's bytes (`http.stream`). Either way:
- one write per request; the status line and headers read in one go;
- the body (Content-Length, chunked, or until the server closes) yielded as it arrives, de-chunked, one
  piece per socket read however many chunks it held;
- connections kept per host and port, last used first; a body read to its end hands its connection back,
  a body closed early closes it, which is how a backend learns that a stopped reply is no longer wanted.
HTTPS, proxies and streamed uploads go to httpx's own transport.
"""

from __future__ import annotations

import asyncio
import time

import httpx

READ_SIZE = 65536


class _Connection:
    __slots__ = ("reader", "writer", "idle_since")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def usable(self) -> bool:
        return not (self.reader.at_eof() or self.writer.is_closing() or self.reader.exception())

    def close(self) -> None:
        self.writer.close()


def _timeouts(request: httpx.Request) -> dict:
    return request.extensions.get("timeout") or {}


class _Body(httpx.AsyncByteStream):
    """A response body read straight off the connection."""

    def __init__(self, transport: LeanTransport, key: tuple, connection: _Connection, request: httpx.Request | None,
                 *, length: int | None, chunked: bool, keep_alive: bool, read_timeout: float | None):
        self.transport = transport
        self.key = key
        self.connection = connection
        self.request = request  # for httpx's errors; None on the direct path (`LeanTransport.open`)
        self.length = length
        self.chunked = chunked
        self.keep_alive = keep_alive
        self.complete = False
        self.read_timeout = read_timeout
        # The read timeout is one timer per body that re-arms itself, not one per read: a timer per
        # socket read (asyncio.timeout) was a visible share of the CPU at a few thousand reads a second.
        self._timer: asyncio.TimerHandle | None = None
        self._reading: asyncio.Task | None = None
        self._read_began = 0.0
        self._timed_out = False

    def _watch(self) -> None:
        loop = asyncio.get_running_loop()
        if self._reading is not None and loop.time() - self._read_began >= self.read_timeout:
            self._timed_out = True
            self._reading.cancel()
            return
        began = self._read_began if self._reading is not None else loop.time()
        self._timer = loop.call_at(began + self.read_timeout, self._watch)

    async def _read(self) -> bytes:
        loop = asyncio.get_running_loop()
        self._read_began = loop.time()
        if self._timer is None and self.read_timeout is not None:
            self._timer = loop.call_at(self._read_began + self.read_timeout, self._watch)
        self._reading = asyncio.current_task()
        try:
            return await self.connection.reader.read(READ_SIZE)
        except asyncio.CancelledError:
            if not self._timed_out:
                raise
            self._reading.uncancel()
            raise httpx.ReadTimeout("Timed out reading the response body.", request=self.request) from None
        except OSError as exc:
            raise httpx.ReadError(str(exc) or exc.__class__.__name__, request=self.request) from exc
        finally:
            self._reading = None

    async def __aiter__(self):
        if self.chunked:
            async for piece in self._chunked():
                yield piece
        elif self.length is not None:
            remaining = self.length
            while remaining > 0:
                data = await self._read()
                if not data:
                    raise httpx.RemoteProtocolError("The server closed the connection mid-body.",
                                                    request=self.request)
                if len(data) > remaining:
                    raise httpx.RemoteProtocolError("The body is longer than its Content-Length.",
                                                    request=self.request)
                remaining -= len(data)
                yield data
        else:  # until the server closes the connection
            self.keep_alive = False
            while data := await self._read():
                yield data
        self.complete = True

    async def _chunked(self):
        """Decode `size CRLF data CRLF ... 0 CRLF trailers CRLF`; yield all complete data of each read."""
        buffer, pos = bytearray(), 0
        remaining = -1  # bytes left in the current chunk; -1: a size line is due
        while True:
            out = []
            while True:
                if remaining == -1:
                    end = buffer.find(b"\r\n", pos)
                    if end < 0:
                        break
                    try:
                        size = int(bytes(buffer[pos:end]).split(b";", 1)[0].strip(), 16)
                    except ValueError as exc:
                        raise httpx.RemoteProtocolError("A malformed chunk size.", request=self.request) from exc
                    pos = end + 2
                    if size == 0:
                        remaining = -2  # trailers, then the end
                    else:
                        remaining = size
                elif remaining > 0:
                    available = len(buffer) - pos
                    if not available:
                        break
                    take = min(available, remaining)
                    out.append(bytes(buffer[pos:pos + take]))
                    pos += take
                    remaining -= take  # at 0: the CRLF after the data is due
                elif remaining == 0:  # the CRLF after a chunk's data
                    if len(buffer) - pos < 2:
                        break
                    if buffer[pos:pos + 2] != b"\r\n":
                        raise httpx.RemoteProtocolError("A chunk did not end with CRLF.", request=self.request)
                    pos += 2
                    remaining = -1
                else:  # remaining == -2: trailer lines until an empty one
                    end = buffer.find(b"\r\n", pos)
                    if end < 0:
                        break
                    blank = end == pos
                    pos = end + 2
                    if blank:
                        if out:
                            yield b"".join(out)
                        return
            if out:
                yield b"".join(out)
            del buffer[:pos]
            pos = 0
            data = await self._read()
            if not data:
                raise httpx.RemoteProtocolError("The server closed the connection mid-body.", request=self.request)
            buffer += data

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        connection, self.connection = self.connection, None
        if connection is None:
            return
        self.transport._give_slot()
        if self.complete and self.keep_alive and connection.usable():
            self.transport._release(self.key, connection)
        else:
            connection.close()


class LeanTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 with keep-alive for `http://` URLs; everything else goes to `fallback`."""

    def __init__(self, *, limits: httpx.Limits, fallback: httpx.AsyncBaseTransport):
        self.fallback = fallback
        self.max_idle = limits.max_keepalive_connections or 0
        self.keepalive_expiry = limits.keepalive_expiry
        self._idle: dict[tuple, list[_Connection]] = {}
        # At most `max_connections` exchanges at once (a slot is held until the body is closed), as httpx's
        # own pool does; waiting longer than the pool timeout raises httpx.PoolTimeout.
        self._slots = asyncio.Semaphore(limits.max_connections) if limits.max_connections else None

    # --- the pool ------------------------------------------------------------------------------------

    def _release(self, key: tuple, connection: _Connection) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) >= self.max_idle:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        idle.append(connection)

    def _reuse(self, key: tuple) -> _Connection | None:
        idle = self._idle.get(key)
        now = time.monotonic()
        while idle:
            connection = idle.pop()  # the most recently used is the likeliest to still be open
            expired = self.keepalive_expiry is not None and now - connection.idle_since > self.keepalive_expiry
            if connection.usable() and not expired:
                return connection
            connection.close()
        return None

    async def _connect(self, request: httpx.Request | None, timeouts: dict, host: str, port: int) -> _Connection:
        try:
            async with asyncio.timeout(timeouts.get("connect")):
                reader, writer = await asyncio.open_connection(host, port, limit=READ_SIZE)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout(f"Timed out connecting to {host}:{port}.", request=request) from exc
        except OSError as exc:
            raise httpx.ConnectError(str(exc) or exc.__class__.__name__, request=request) from exc
        return _Connection(reader, writer)

    # --- one exchange --------------------------------------------------------------------------------

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme != "http" or "transfer-encoding" in request.headers:
            return await self.fallback.handle_async_request(request)
        body = await request.aread()
        head = [f"{request.method} {url.raw_path.decode('ascii')} HTTP/1.1\r\n".encode("ascii")]
        head.extend(name + b": " + value + b"\r\n" for name, value in request.headers.raw)
        payload = b"".join(head) + b"\r\n" + body
        status, headers, stream = await self.open(
            (url.host, url.port or 80), payload, _timeouts(request), method=request.method, request=request
        )
        return httpx.Response(status, headers=headers, stream=stream, extensions={"http_version": b"HTTP/1.1"})

    async def open(self, key: tuple[str, int], payload: bytes, timeouts: dict, *, method: str,
                   request: httpx.Request | None = None) -> tuple[int, list, _Body]:
        """Send one complete request (`payload`: head and body) to `key` (host, port) on a pooled connection;
        the status, the headers and the body, to be read and then closed.

        The providers call this directly for plain-HTTP backends (`http.stream`), without httpx's request
        and response objects; errors are httpx's either way."""
        await self._take_slot(timeouts, request)
        try:
            connection = self._reuse(key)
            if connection is not None:
                try:
                    return await self._exchange(request, method, key, connection, payload, timeouts)
                except _StaleConnection:
                    pass  # the server had closed it while it sat idle: once more on a new connection
            connection = await self._connect(request, timeouts, *key)
            try:
                return await self._exchange(request, method, key, connection, payload, timeouts)
            except _StaleConnection as exc:
                raise httpx.RemoteProtocolError("Server disconnected without sending a response.",
                                                request=request) from exc
        except BaseException:
            self._give_slot()
            raise

    async def _take_slot(self, timeouts: dict, request: httpx.Request | None) -> None:
        if self._slots is None:
            return
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError as exc:
            raise httpx.PoolTimeout("Timed out waiting for a connection slot.", request=request) from exc

    def _give_slot(self) -> None:
        if self._slots is not None:
            self._slots.release()

    async def _exchange(self, request: httpx.Request | None, method: str, key: tuple, connection: _Connection,
                        payload: bytes, timeouts: dict) -> tuple[int, list, _Body]:
        try:
            connection.writer.write(payload)
            status, headers = await self._read_head(request, connection, timeouts.get("read"))
        except BaseException:
            connection.close()
            raise
        names = {name.lower(): value for name, value in headers}
        chunked = b"chunked" in names.get(b"transfer-encoding", b"").lower()
        length = None
        if not chunked and b"content-length" in names:
            try:
                length = int(names[b"content-length"])
            except ValueError as exc:
                connection.close()
                raise httpx.RemoteProtocolError("A malformed Content-Length.", request=request) from exc
        if method == "HEAD" or status in (204, 304):
            length, chunked = 0, False
        keep_alive = names.get(b"connection", b"").lower() != b"close"
        stream = _Body(self, key, connection, request, length=length, chunked=chunked,
                       keep_alive=keep_alive, read_timeout=timeouts.get("read"))
        if length == 0 and not chunked:
            stream.complete = True
        return status, headers, stream

    async def _read_head(self, request: httpx.Request | None, connection: _Connection,
                         read_timeout: float | None) -> tuple[int, list]:
        """Status and headers; whatever of the body came with them stays in the reader's buffer."""
        reader = connection.reader
        while True:
            try:
                async with asyncio.timeout(read_timeout):
                    raw = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if not exc.partial:
                    raise _StaleConnection() from exc
                raise httpx.RemoteProtocolError("The server closed the connection mid-headers.",
                                                request=request) from exc
            except asyncio.LimitOverrunError as exc:
                raise httpx.RemoteProtocolError("The response headers are too large.", request=request) from exc
            except TimeoutError as exc:
                raise httpx.ReadTimeout("Timed out waiting for the response.", request=request) from exc
            except ConnectionError as exc:
                raise _StaleConnection() from exc
            except OSError as exc:
                raise httpx.ReadError(str(exc) or exc.__class__.__name__, request=request) from exc
            lines = raw[:-4].split(b"\r\n")
            parts = lines[0].split(b" ", 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise httpx.RemoteProtocolError("A malformed status line.", request=request)
            status = int(parts[1])
            if 100 <= status < 200 and status != 101:
                continue  # an interim response (100 Continue): the real one follows
            headers = []
            for line in lines[1:]:
                name, sep, value = line.partition(b":")
                if not sep:
                    raise httpx.RemoteProtocolError("A malformed header line.", request=request)
                headers.append((name.strip(), value.strip()))
            return status, headers

    async def aclose(self) -> None:
        for idle in self._idle.values():
            for connection in idle:
                connection.close()
        self._idle.clear()
        await self.fallback.aclose()


class _StaleConnection(Exception):
    """The server closed a reused connection before answering."""
