"""The PostgreSQL wire endpoint: one asyncio server, one :class:`Session` per connection.

Messages are framed, decoded and encoded by pygwire (a sans-I/O codec of the PostgreSQL
protocol 3.0, with its connection-phase state machine); this module is the hub's side of the
conversation — who is calling, for what purpose, and which statements are exchanges.

* **Login**: user = member, password = one of the member's tokens (checked by its SHA-256
  hash, as a bearer token is), database = the purpose. The password travels in clear inside
  the connection, so it is accepted only over TLS or on loopback. A wrong token and an
  unknown member get the same answer; members of kind ``hub`` are refused (they must sign).
  Each login of a known member is one ledger entry.
* **Statements**: client commands (``SET``, ``SHOW``, ``BEGIN``…) are answered by the
  session; catalog queries by the session's emulated catalog (``pgwire.catalog``, counted
  in metrics, not recorded one by one); every other statement is one governed exchange
  (``protocol.exchange.answer``, the code ``POST /v1/query`` runs), refused or answered and
  recorded exactly as over HTTP. Each answer's receipt comes as a ``NOTICE`` and stays
  readable with ``SHOW zhongshu.receipt``.
* **Extended protocol**: prepared statements with ``$n`` parameters answer as the literal
  query does (``pgwire.statements.bind``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from pygwire import BackendConnection, TransactionStatus
from pygwire import messages as m

from zhongshu.errors import LedgerUnavailable, Unauthenticated, ZhongshuError
from zhongshu.ledger import Ledger, ReceiptJSON, entry
from zhongshu.policy.identity import Authenticator, Caller, must_sign, token_hash
from zhongshu.protocol import exchange
from zhongshu.protocol.metrics import Metrics
from zhongshu.protocol.pgwire import catalog as emulated
from zhongshu.protocol.pgwire import columns, statements
from zhongshu.protocol.pgwire import types as t
from zhongshu.protocol.pgwire.errors import sqlstate
from zhongshu.query.service import QueryService, Result

log = logging.getLogger("zhongshu.pgwire")
refusals = logging.getLogger("zhongshu.refusals")
ENDPOINT = "pgwire"
READ_CHUNK = 1 << 16
MAX_SESSIONS = 512
"""Wire sessions open at once at most (more: ``53300 too_many_connections``)."""
MAX_MESSAGE = 8 << 20
"""Bytes of one client message at most (SQL is capped at 100,000 characters anyway);
before login, 64 KiB — an anonymous client cannot make the hub buffer more."""
LOGIN_TIMEOUT_S = 30.0
"""Seconds a client has from connecting to being logged in."""
LIVE_CHECK_S = 5.0
"""How often a session re-checks that its token is still live when nothing changed (as the
bearer cache does); it re-checks at once when the store's change list moved (a revocation
through the CLI or another replica: :meth:`Authenticator.changed`)."""
ROWS_PER_WRITE = 2000


class WireError(Exception):
    """An error to send as an ``ErrorResponse`` (SQLSTATE, message, protocol code, receipt)."""

    def __init__(self, state: str, message: str, code: str = "",
                 receipt: ReceiptJSON | None = None, fatal: bool = False) -> None:
        super().__init__(message)
        self.state, self.message, self.code = state, message, code
        self.receipt, self.fatal = receipt, fatal

    def fields(self) -> dict[str, str]:
        severity = "FATAL" if self.fatal else "ERROR"
        out = {"S": severity, "V": severity, "C": self.state, "M": self.message}
        detail = []
        if self.code:
            detail.append(f"code: {self.code}")
        if self.receipt is not None:
            detail.append("receipt: " + orjson.dumps(self.receipt).decode())
        if detail:
            out["D"] = "; ".join(detail)
        return out


class Closed(Exception):
    """The client went away."""


@dataclass
class Prepared:
    """A parsed statement: its text and its parameters' OIDs."""

    sql: str
    param_types: list[int]


@dataclass
class Outcome:
    """What a statement answered: column names and OIDs (none: a command), rows of
    JSON-ready values, the command tag, and the receipt. An exchange's answer keeps its
    ``result`` and its JSON ``payload`` instead of rows: a large answer's messages are built
    from the result's Arrow columns (``pgwire.columns``), a small one's — and any column
    with no whole-column form — from the payload's values (decoded once, when first
    needed)."""

    names: list[str]
    oids: list[int]
    rows: list[list[Any]]
    tag: str
    receipt: ReceiptJSON | None = None
    result: Result | None = None
    payload: bytes | None = None
    _json: list[list[Any]] | None = field(default=None, repr=False)

    @property
    def size(self) -> int:
        """How many rows the statement answered."""
        return self.result.num_rows if self.result is not None else len(self.rows)

    def json_rows(self) -> list[list[Any]]:
        """The rows' JSON values: the very bytes the ledger entry hashes, decoded."""
        if self.payload is None:
            return self.rows
        if self._json is None:
            self._json = orjson.loads(self.payload)
        return self._json


@dataclass
class Portal:
    """A bound statement, and its answer once run (rows sent so far, for ``max_rows``)."""

    prepared: Prepared
    sql: str
    result_formats: list[int]
    outcome: Outcome | None = None
    sent: int = 0


#: the settings a session reports and answers to ``SHOW`` / ``current_setting`` (as
#: PostgreSQL spells them; looked up case-insensitively)
REPORTED = {
    "server_version": emulated.PG_VERSION, "server_encoding": "UTF8",
    "client_encoding": "UTF8", "DateStyle": "ISO, MDY", "IntervalStyle": "postgres",
    "TimeZone": "UTC", "integer_datetimes": "on", "standard_conforming_strings": "on",
    "is_superuser": "off", "default_transaction_read_only": "on",
    "in_hot_standby": "off",
}
DEFAULTS = {
    "server_version_num": "160000", "search_path": '"$user", public',
    "transaction_isolation": "read committed", "transaction isolation level": "read committed",
    "transaction_read_only": "on", "extra_float_digits": "1", "max_identifier_length": "63",
    "lc_collate": "C.UTF-8", "lc_ctype": "C.UTF-8", "max_index_keys": "32",
    "statement_timeout": "0", "bytea_output": "hex", "application_name": "",
}


class Endpoint:
    """The wire endpoint of one hub: its parts, and the sessions open now.

    Args:
        service: the query service (the same one the HTTP protocol uses).
        ledger: where exchanges, refusals and logins are recorded (None: no ledger).
        authn: resolves tokens to members.
        metrics: the hub's metrics (logins, catalog queries and exchanges are counted).
        tls: the server TLS context (None: no TLS, password login on loopback only).
    """

    def __init__(self, service: QueryService, ledger: Ledger | None, authn: Authenticator,
                 metrics: Metrics, tls: ssl.SSLContext | None = None) -> None:
        self.service = service
        self.ledger = ledger
        self.authn = authn
        self.metrics = metrics
        self.tls = tls
        self.sessions: dict[int, Session] = {}
        self._next_pid = 1000

    def use(self, service: QueryService, authn: Authenticator, metrics: Metrics) -> None:
        """Serve from now on with these parts (a reloaded configuration: ``zhongshu.reload``);
        open sessions run their next statement on them."""
        self.service, self.authn, self.metrics = service, authn, metrics

    async def start(self, host: str, port: int) -> asyncio.Server:
        """Listen on ``host:port``; returns the server (close it to stop)."""
        return await asyncio.start_server(self._client, host, port, limit=READ_CHUNK)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                      ) -> None:
        self._next_pid += 1
        if len(self.sessions) >= MAX_SESSIONS:
            writer.write(m.ErrorResponse(fields={
                "S": "FATAL", "V": "FATAL", "C": "53300",
                "M": "too many wire sessions are open; try again later"}).to_wire())
            await writer.drain()
            writer.close()
            return
        session = Session(self, reader, writer, self._next_pid)
        self.sessions[session.pid] = session
        try:
            await session.run()
        except (Closed, ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
            pass
        except Exception:
            log.exception("wire session failed")
        finally:
            self.sessions.pop(session.pid, None)
            session.close()
            writer.close()

    def cancel(self, pid: int, key: bytes) -> None:
        """A ``CancelRequest``: stop waiting for the running statement of that session."""
        s = self.sessions.get(pid)
        if s is not None and secrets.compare_digest(s.secret, key) and s.running is not None:
            s.running.cancel()


@dataclass
class Session:
    """One client connection."""

    endpoint: Endpoint
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    pid: int
    conn: BackendConnection = field(default_factory=lambda: BackendConnection(strict=False))
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(4))
    who: Caller | None = None
    purpose: str = ""
    tls: bool = False
    settings: dict[str, str] = field(default_factory=dict)
    receipt: ReceiptJSON | None = None
    prepared: dict[str, Prepared] = field(default_factory=dict)
    portals: dict[str, Portal] = field(default_factory=dict)
    status: str = "I"
    failed: bool = False
    running: asyncio.Task[Any] | None = None
    _inbox: deque[Any] = field(default_factory=deque)
    _pending: int = 0
    _out: list[bytes] = field(default_factory=list)
    _inferred: dict[str, list[int]] = field(default_factory=dict)
    _token_hash: str = ""
    _live_at: float = 0.0
    _live_generation: int = 0
    _grants: Any = None
    _emulation: emulated.Emulation | None = None

    def close(self) -> None:
        """Free what the session holds (its emulated catalog)."""
        if self._emulation is not None:
            self._emulation.close()
            self._emulation = None

    # --- I/O --------------------------------------------------------------------------------

    async def next(self) -> Any:
        while not self._inbox:
            data = await self.reader.read(READ_CHUNK)
            if not data:
                raise Closed
            self._pending += len(data)
            self._inbox.extend(self.conn.receive(data))
            if self._inbox:
                self._pending = 0
            elif self._pending > (MAX_MESSAGE if self.who is not None else 1 << 16):
                raise Closed  # a message larger than any statement the hub takes
        return self._inbox.popleft()

    async def flush(self) -> None:
        """Write what the session has to say in one go (a reply of several messages is one
        segment, not one per message) and wait until the socket takes it."""
        if self._out:
            data, self._out = b"".join(self._out), []
            self.writer.write(data)
        await self.writer.drain()

    def send(self, msg: Any) -> None:
        self._out.append(self.conn.send(msg))

    def send_error(self, e: WireError) -> None:
        self.send(m.ErrorResponse(fields=e.fields()))

    def notice(self, text: str) -> None:
        self.send(m.NoticeResponse(fields={"S": "NOTICE", "V": "NOTICE", "C": "00000",
                                           "M": text}))

    # --- startup ----------------------------------------------------------------------------

    async def run(self) -> None:
        try:
            async with asyncio.timeout(LOGIN_TIMEOUT_S):  # a slot is not held by a silent peer
                startup = await self._negotiate()
                if startup is None:
                    return
                await self._login(startup.params)
        except WireError as e:
            self.send_error(e)
            await self.flush()
            return
        except TimeoutError:
            return
        await self._serve()

    async def _negotiate(self) -> m.StartupMessage | None:
        while True:
            msg = await self.next()
            if isinstance(msg, m.SSLRequest):
                if self.endpoint.tls is None or self.tls:
                    self.send(m.SSLResponse(accepted=False))
                    await self.flush()
                    continue
                self.send(m.SSLResponse(accepted=True))
                await self.flush()
                await self.writer.start_tls(self.endpoint.tls)
                self.tls = True
            elif isinstance(msg, m.GSSEncRequest):
                self._out.append(b"N")  # no GSSAPI: the client goes on in clear or asks TLS
                await self.flush()
            elif isinstance(msg, m.CancelRequest):
                self.endpoint.cancel(msg.process_id, msg.secret_key)
                return None
            elif isinstance(msg, m.StartupMessage):
                return msg
            else:
                raise Closed

    def _loopback(self) -> bool:
        peer = self.writer.get_extra_info("peername")
        try:
            return bool(peer) and ipaddress.ip_address(peer[0]).is_loopback
        except ValueError:
            return False  # a Unix socket path would be local, but the hub opens none

    async def _login(self, params: dict[str, str]) -> None:
        ep = self.endpoint
        user = params.get("user", "")
        self.purpose = params.get("database") or user
        if not user:
            raise WireError("28000", "no user: connect as a member of this city (-U NAME)",
                            fatal=True)
        if not self.tls and (ep.service.settings.pg_require_tls or not self._loopback()):
            ep.metrics.wire("login_refused")
            where = "here" if ep.service.settings.pg_require_tls else "off loopback"
            raise WireError("28000", f"password login {where} needs TLS: connect with "
                            "sslmode=require", "unauthenticated", fatal=True)
        self.send(m.AuthenticationCleartextPassword())
        await self.flush()
        msg = await self.next()
        if not isinstance(msg, m.PasswordMessage):
            raise Closed
        password = msg.password.decode() if isinstance(msg.password, bytes) else msg.password
        failed = WireError("28P01", f'password authentication failed for user "{user}": the '
                           "password must be one of the member's live tokens",
                           "unauthenticated", fatal=True)
        try:
            who = ep.authn.authenticate("Bearer " + password.rstrip("\x00"))
        except Unauthenticated:
            ep.metrics.wire("login_refused")
            raise failed from None
        if who.name != user:
            ep.metrics.wire("login_refused")
            raise failed  # the same answer as an unknown token: it says nothing of `user`
        self.who = who
        self._token_hash = token_hash(password.rstrip("\x00"))
        self._live_at, self._live_generation = time.monotonic(), ep.authn.generation
        if must_sign(who.member):
            ep.metrics.wire("login_refused")
            receipt = await exchange.record_refusal(ep.service, ep.ledger, who, ENDPOINT,
                                                    "unauthenticated")
            raise WireError("28000", "members of kind `hub` must sign their requests (HTTP "
                            "Message Signatures); they cannot log in on the wire endpoint",
                            "unauthenticated", receipt, fatal=True)
        self.settings = {k.lower(): v for k, v in {**DEFAULTS, **REPORTED}.items()}
        for k, v in params.items():
            if k not in ("user", "database", "options", "replication"):
                self.settings[k.lower()] = v
        if ep.ledger is not None:
            try:
                self.receipt = (await ep.ledger.record_async(
                    entry.login(who.name, ENDPOINT, self.purpose, self.tls))).to_dict()
            except LedgerUnavailable as e:
                raise WireError("57P03", e.message, e.code, fatal=True) from None
        ep.metrics.wire("login")
        self.send(m.AuthenticationOk())
        for k in REPORTED:
            self.send(m.ParameterStatus(name=k, value=self.settings[k.lower()]))
        self.send(m.ParameterStatus(name="application_name",
                                    value=self.settings.get("application_name", "")))
        self.send(m.ParameterStatus(name="session_authorization", value=who.name))
        self.send(m.BackendKeyData(process_id=self.pid, secret_key=self.secret))
        if self.receipt is not None:
            self.notice("zhongshu login recorded: " + orjson.dumps(self.receipt).decode())
        self.ready()
        await self.flush()

    def ready(self) -> None:
        self.send(m.ReadyForQuery(status=TransactionStatus(self.status)))

    # --- messages ---------------------------------------------------------------------------

    async def _serve(self) -> None:
        while True:
            msg = await self.next()
            if isinstance(msg, m.Terminate):
                return
            if isinstance(msg, m.Sync):
                self.failed = False
                self.ready()
                await self.flush()
                continue
            if isinstance(msg, m.Flush):
                await self.flush()
                continue
            if isinstance(msg, m.Query):
                self.failed = False
                try:
                    await self._simple(msg.query_string)
                except WireError:  # fatal: already sent
                    await self.flush()
                    return
                self.ready()
                await self.flush()
                continue
            if self.failed:
                continue  # after an error, the extended protocol skips to the next Sync
            try:
                await self._extended(msg)
            except WireError as e:
                self.send_error(e)
                if e.fatal:
                    await self.flush()
                    return
                self.failed = True
                if self.status == "T":
                    self.status = "E"
            if sum(map(len, self._out)) > 1 << 20:
                await self.flush()  # a pipelining client: do not buffer without end

    async def _simple(self, sql: str) -> None:
        try:
            prepared = Prepared(sql, [])
            if statements.placeholders(sql):
                raise WireError("08P01", "a simple query has no parameters; prepare it",
                                "bad_request")
            out = await self.outcome(Portal(prepared, sql, [0]))
        except WireError as e:
            self.send_error(e)
            if e.fatal:
                raise
            if self.status == "T":
                self.status = "E"
            return
        if out is None:
            self.send(m.EmptyQueryResponse())
            return
        if out.names:
            self.send(self._row_description(out, [0]))
        self._rows(out, [0], 0, out.size)
        self.send(m.CommandComplete(tag=out.tag))

    async def _extended(self, msg: Any) -> None:
        if isinstance(msg, m.Parse):
            n = statements.placeholders(msg.query)
            types = list(msg.param_types) + [0] * max(n - len(msg.param_types), 0)
            if any(x == 0 for x in types):
                inferred = self._inferred.get(msg.query)
                if inferred is None or len(inferred) != len(types):
                    inferred = statements.infer_param_types(msg.query, len(types),
                                                            self._column_types())
                    if len(self._inferred) < 1024:
                        self._inferred[msg.query] = inferred
                types = [x or inferred[i] for i, x in enumerate(types)]
            self.prepared[msg.statement] = Prepared(msg.query, types)
            self.send(m.ParseComplete())
        elif isinstance(msg, m.Bind):
            prepared = self._statement(msg.statement)
            formats = list(msg.param_formats)
            values = []
            for i, raw in enumerate(msg.param_values):
                fmt = formats[i] if len(formats) > 1 else (formats[0] if formats else 0)
                oid = prepared.param_types[i] if i < len(prepared.param_types) else 0
                try:
                    values.append(t.decode_param(raw, oid, fmt))
                except (ValueError, UnicodeDecodeError) as e:
                    raise WireError("22P02", f"parameter ${i + 1}: {e}", "bad_request"
                                    ) from None
            try:
                sql = statements.bind(prepared.sql, values)
            except ValueError as e:
                raise WireError("08P01", str(e), "bad_request") from None
            self.portals[msg.portal] = Portal(prepared, sql, list(msg.result_formats))
            self.send(m.BindComplete())
        elif isinstance(msg, m.Describe):
            if msg.kind == "S":
                prepared = self._statement(msg.name)
                self.send(m.ParameterDescription(type_oids=prepared.param_types))
                out = await self._describe(prepared)
                self.send(self._row_description(out, [0]) if out and out.names else m.NoData())
            else:
                portal = self._portal(msg.name)
                out = await self.outcome(portal)
                self.send(self._row_description(out, portal.result_formats)
                          if out and out.names else m.NoData())
        elif isinstance(msg, m.Execute):
            portal = self._portal(msg.portal)
            out = await self.outcome(portal)
            if out is None:
                self.send(m.EmptyQueryResponse())
                return
            end = out.size if not msg.max_rows else min(out.size, portal.sent + msg.max_rows)
            self._rows(out, portal.result_formats, portal.sent, end)
            portal.sent = end
            if msg.max_rows and end < out.size:
                self.send(m.PortalSuspended())
            else:
                self.send(m.CommandComplete(tag=out.tag))
        elif isinstance(msg, m.Close):
            (self.prepared if msg.kind == "S" else self.portals).pop(msg.name, None)
            self.send(m.CloseComplete())
        else:
            raise WireError("0A000", f"the wire endpoint does not take {type(msg).__name__} "
                            "messages (it is read-only: no COPY, no function calls)",
                            "statement_not_allowed")

    def _statement(self, name: str) -> Prepared:
        p = self.prepared.get(name)
        if p is None:
            raise WireError("26000", f'prepared statement "{name}" does not exist',
                            "bad_request")
        return p

    def _portal(self, name: str) -> Portal:
        p = self.portals.get(name)
        if p is None:
            raise WireError("34000", f'portal "{name}" does not exist', "bad_request")
        return p

    # --- encoding ---------------------------------------------------------------------------

    def _row_description(self, out: Outcome, formats: list[int]) -> m.RowDescription:
        fields = []
        for i, (name, oid) in enumerate(zip(out.names, out.oids, strict=True)):
            fmt = formats[i] if len(formats) > 1 else (formats[0] if formats else 0)
            size = t.TYPES.get(oid, ("", -1))[1]
            fields.append(m.FieldDescription(name=name, type_oid=oid, type_size=size,
                                             type_modifier=-1, format_code=fmt))
        return m.RowDescription(fields=fields)

    def _rows(self, out: Outcome, formats: list[int], start: int, end: int) -> None:
        if not out.names or start >= end:
            return
        fmts = [formats[i] if len(formats) > 1 else (formats[0] if formats else 0)
                for i in range(len(out.oids))]
        if out.result is not None and end - start >= columns.WHOLE_FROM_ROWS:
            rows = out.json_rows
            try:
                self._out.append(columns.data_rows(
                    out.result.table.slice(start, end - start), out.oids, fmts,
                    lambda i: [r[i] for r in rows()[start:end]]))
                return
            except Exception:  # the same bytes value by value (slower), and the log says
                log.exception("whole-column encoding failed; encoding value by value")
        encs = [t.encoder(oid, fmt) for oid, fmt in zip(out.oids, fmts, strict=True)]
        values = out.json_rows()
        # rows do not change the connection's phase: encoded without the state machine, in
        # chunks (one write each, not one per row)
        for i in range(start, end, ROWS_PER_WRITE):
            self._out.append(t.data_rows(values[i:min(i + ROWS_PER_WRITE, end)], encs))

    # --- statements -------------------------------------------------------------------------

    def check_live(self) -> None:
        """The session's token is still live (checked every ``LIVE_CHECK_S``): revoking a
        token, or its expiry, ends the sessions made with it, as it ends HTTP sessions.

        Raises:
            WireError: ``28P01``, fatal (the session is closed).
        """
        now = time.monotonic()
        generation = self.endpoint.authn.changed()
        if now - self._live_at < LIVE_CHECK_S and generation == self._live_generation:
            return
        assert self.who is not None
        try:
            self.endpoint.authn.token_live(self.who.name, self._token_hash)
        except Unauthenticated:
            raise WireError("28P01", "the token this session logged in with is revoked or "
                            "expired; log in again", "unauthenticated", fatal=True) from None
        self._live_at, self._live_generation = now, generation

    def emulation(self) -> emulated.Emulation:
        """The session's emulated catalog, rebuilt whenever the grants in force change."""
        service = self.endpoint.service
        service.refresh_grants()
        if self._emulation is None or self._grants is not service.grants:
            assert self.who is not None
            if self._emulation is not None:
                self._emulation.close()
            self._grants = service.grants
            rels = emulated.visible_relations(service.catalog, service.grants, self.who,
                                              self.purpose)
            self._emulation = emulated.Emulation(
                rels, self.purpose, self.who.name, self._catalog_settings,
                min(service.settings.query_timeout_s, emulated.TIME_LIMIT_S))
        return self._emulation

    def _catalog_settings(self) -> dict[str, str]:
        return {**self.settings, "zhongshu.purpose": self.purpose}

    def _column_types(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.emulation().relations:
            for name, oid, _ in r.columns:
                out.setdefault(name, oid)
        return out

    async def _describe(self, prepared: Prepared) -> Outcome | None:
        """A prepared statement's columns, before it is bound: commands and catalog queries
        are answered at once (with NULL parameters); a data query is planned, not run."""
        nulls = [None] * len(prepared.param_types)
        sql = statements.bind(prepared.sql, nulls)
        cmd = statements.command(sql)
        if cmd is not None:
            return Outcome(["setting"], [t.TEXT], [], "SHOW") if cmd.kind == "show" else None
        if emulated.is_catalog_query(sql):
            return await self._catalog(sql)
        ep = self.endpoint
        assert self.who is not None
        who, purpose = self.who, self.purpose
        deadline = ep.service.deadline()
        try:
            schema = await exchange.off_loop(ep.service, deadline, lambda: ep.service.describe(
                who, sql, purpose, deadline))
        except ZhongshuError as e:
            raise await self._refused(e, sql) from None
        return Outcome([f.name for f in schema], [t.oid_of(f.type) for f in schema], [], "")

    async def outcome(self, portal: Portal) -> Outcome | None:
        """Run a bound statement once (the portal keeps its answer for ``Execute``); an
        unexpected error is ``XX000`` (the session goes on), its details in the log."""
        if portal.outcome is not None:
            return portal.outcome
        try:
            return await self._outcome(portal)
        except WireError:
            raise
        except Exception:
            log.exception("wire statement failed")
            raise WireError("XX000", "internal error; the hub's log has the details",
                            "internal") from None

    async def _outcome(self, portal: Portal) -> Outcome | None:
        sql = portal.sql
        cmd = statements.command(sql)
        if cmd is not None:
            out = self._command(cmd)
        elif self.status == "E":
            raise WireError("25P02", "current transaction is aborted, commands ignored until "
                            "end of transaction block", "bad_request")
        elif emulated.is_catalog_query(sql):
            out = await self._catalog(sql)
        else:
            out = await self._exchange(sql)
        portal.outcome = out
        return out

    def _command(self, cmd: statements.Command) -> Outcome | None:
        kind = cmd.kind
        if kind == "empty":
            return None
        if kind == "begin":
            self.status = "T" if self.status == "I" else self.status
            return Outcome([], [], [], "BEGIN")
        if kind in ("commit", "rollback"):
            tag = "ROLLBACK" if kind == "rollback" or self.status == "E" else "COMMIT"
            self.status = "I"
            return Outcome([], [], [], tag)
        if kind == "set":
            if cmd.name.startswith("zhongshu."):
                raise WireError("55P02", f'parameter "{cmd.name}" cannot be changed (the '
                                "purpose is the database you connect to)", "bad_request")
            self.settings[cmd.name] = cmd.value
            return Outcome([], [], [], "SET")
        if kind == "reset":
            self.settings[cmd.name] = {k.lower(): v for k, v in
                                       {**DEFAULTS, **REPORTED}.items()}.get(cmd.name, "")
            return Outcome([], [], [], "RESET")
        if kind == "show":
            return Outcome([cmd.name], [t.TEXT], [[self._show(cmd.name)]], "SHOW")
        return Outcome([], [], [], cmd.name or "SET")

    def _show(self, name: str) -> str:
        if name == "zhongshu.receipt":
            return orjson.dumps(self.receipt).decode() if self.receipt else ""
        if name == "zhongshu.purpose":
            return self.purpose
        if name == "all":
            raise WireError("0A000", "SHOW ALL is not offered; SHOW one setting",
                            "setting_unknown")
        value = self.settings.get(name)
        if value is None:
            raise WireError("42704", f'unrecognized configuration parameter "{name}"',
                            "setting_unknown")
        return value

    async def _catalog(self, sql: str) -> Outcome:
        self.check_live()
        self.endpoint.metrics.wire("catalog")
        emu = self.emulation()
        try:
            names, oids, rows = await asyncio.to_thread(emu.run, sql)
        except ZhongshuError as e:
            raise WireError(sqlstate(e.code), e.message, e.code) from None
        except Exception:
            log.exception("catalog query failed")
            raise WireError("XX000", "the catalog query failed; the hub's log has the "
                            "details", "internal") from None
        return Outcome(names, oids, rows, f"SELECT {len(rows)}")

    async def _exchange(self, sql: str) -> Outcome:
        self.check_live()
        ep = self.endpoint
        assert self.who is not None
        t0 = time.perf_counter()
        deadline = ep.service.deadline()
        try:
            self.running = asyncio.ensure_future(exchange.answer(
                ep.service, ep.ledger, self.who, sql, self.purpose, None, ENDPOINT, deadline))
            done = await self.running
        except asyncio.CancelledError:
            raise WireError("57014", "canceling statement due to user request",
                            "query_timeout") from None
        except ZhongshuError as e:
            ep.metrics.query(e.code, "-", time.perf_counter() - t0)
            raise await self._refused(e, sql) from None
        finally:
            self.running = None
        result = done.result
        ep.metrics.query("ok", result.path, time.perf_counter() - t0)
        self.receipt = done.receipt
        if done.receipt is not None:
            self.notice("zhongshu receipt: " + orjson.dumps(done.receipt).decode()
                        + (" (truncated at the row cap)" if result.truncated else ""))
        return Outcome([f.name for f in result.schema],
                       [t.oid_of(f.type) for f in result.schema], [],
                       f"SELECT {result.num_rows}", done.receipt, result, done.payload)

    async def _refused(self, e: ZhongshuError, sql: str) -> WireError:
        """Record a known caller's refusal (as the HTTP protocol does) and build its error."""
        ep = self.endpoint
        if e.status >= 500 and e.code == "internal":
            log.error("internal error on the wire endpoint: %s", e)
        elif e.status in (403, 404, 429):
            refusals.warning("refused %s: %s: %s", ENDPOINT, e.code, e.message)
        receipt = await exchange.record_refusal(
            ep.service, ep.ledger, self.who, ENDPOINT, e.code,
            exchange.Asked(sql, self.purpose, ENDPOINT), e.datasets,
            getattr(e, "subjects", ()))
        if receipt is not None:
            self.receipt = receipt
        return WireError(sqlstate(e.code), e.message, e.code, receipt)
