"""A fake Telegram Bot API server on 127.0.0.1 for the real python-telegram-bot client.

Point PTB at it with ``ApplicationBuilder().base_url(fake.base_url)``; requests arrive as
``POST /bot<token>/<method>`` (form-encoded, or multipart with files). The fake implements what
PTB and the bot call (getMe, deleteWebhook, getUpdates with long polling, sendMessage,
sendPhoto, sendDocument, editMessageText, answerCallbackQuery, setMyCommands, ...), records
every request (method, parameters, files and the raw body), and has switches:

* ``flood(method, times, retry_after)``: answer the next calls with 429 and
  ``parameters.retry_after``.
* ``go_down(mode)``: ``"refuse"`` closes every connection and the listening socket (connection
  refused), ``"500"`` answers every call with HTTP 500. ``come_up()`` restores service on the
  same port.
* ``conflict``: getUpdates answers 409 Conflict (another poller).

Updates are queued with ``push_command`` / ``push_callback`` and handed out by getUpdates.
"""

from __future__ import annotations

import asyncio
import email.parser
import email.policy
import itertools
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

BOT_ID = 7_000_000_001
BOT_USER = {"id": BOT_ID, "is_bot": True, "first_name": "dort5bot", "username": "dort5_test_bot",
            "can_join_groups": False, "can_read_all_group_messages": False,
            "supports_inline_queries": False}


@dataclass(slots=True)
class Request:
    method: str
    params: dict[str, str]
    files: dict[str, tuple[str, bytes]]   # field -> (filename, content)
    raw: bytes
    status: int = 200

    @property
    def chat_id(self) -> int | None:
        v = self.params.get("chat_id")
        return int(v) if v not in (None, "") else None


@dataclass(slots=True)
class Sent:
    """A message the fake accepted (sendMessage / sendPhoto / sendDocument / editMessageText)."""

    method: str
    chat_id: int
    message_id: int
    text: str                      # text, or caption
    reply_markup: dict | None = None
    filename: str = ""
    content: bytes = b""


@dataclass
class FakeTelegram:
    token: str
    host: str = "127.0.0.1"
    port: int = 0
    requests: list[Request] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    callback_answers: list[dict[str, str]] = field(default_factory=list)
    commands: list[dict] = field(default_factory=list)
    conflict: bool = False
    #: uploads larger than this many bytes get HTTP 413 "Request Entity Too Large" (the Bot API
    #: refuses files over 50 MB; tests use a small limit)
    max_upload_bytes: int | None = None
    #: chats whose user blocked the bot: every send answers 403
    blocked_chats: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._updates: list[dict] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._cq_ids = itertools.count(1)
        self._new_update = asyncio.Condition()
        self._flood: dict[str, list[int]] = {}   # method -> [times left, retry_after]
        self._down: str | None = None
        self._runner: web.ServerRunner | None = None
        self._closing = False
        self._site: web.TCPSite | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/bot"

    async def start(self) -> None:
        self._runner = web.ServerRunner(web.Server(self._handle, access_log=None),
                                       handle_signals=False)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await self._site.start()
        if not self.port:
            sock = self._site._server.sockets[0]  # type: ignore[union-attr]
            self.port = sock.getsockname()[1]

    async def close(self) -> None:
        if self._runner is not None:
            self._closing = True
            async with self._new_update:  # end pending long polls now, not at their timeout
                self._new_update.notify_all()
            await self._runner.cleanup()
            self._runner = None
            self._closing = False

    async def go_down(self, mode: str = "refuse") -> None:
        """``refuse``: drop every connection and stop listening; ``500``: answer HTTP 500."""
        self._down = mode
        if mode == "refuse":
            await self.close()

    async def come_up(self) -> None:
        mode, self._down = self._down, None
        if mode == "refuse":
            await self.start()

    @property
    def is_down(self) -> bool:
        return self._down is not None

    def flood(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with 429 and ``retry_after``."""
        self._flood[method] = [times, retry_after]

    # ------------------------------------------------------------------ updates

    def _user(self, user_id: int) -> dict:
        return {"id": user_id, "is_bot": False, "first_name": f"user{user_id}",
                "language_code": "en"}

    def _chat(self, chat_id: int) -> dict:
        if chat_id < 0:
            return {"id": chat_id, "type": "supergroup", "title": f"group{-chat_id}"}
        return {"id": chat_id, "type": "private", "first_name": f"user{chat_id}"}

    async def _push(self, update: dict) -> int:
        update_id = next(self._update_ids)
        update["update_id"] = update_id
        async with self._new_update:
            self._updates.append(update)
            self._new_update.notify_all()
        return update_id

    async def push_command(self, user_id: int, text: str, *, chat_id: int | None = None) -> int:
        """Queue a message from ``user_id`` in their private chat (or in ``chat_id``, a group
        when negative); a leading /command gets its entity."""
        message: dict[str, Any] = {
            "message_id": next(self._message_ids), "date": int(time.time()),
            "chat": self._chat(user_id if chat_id is None else chat_id),
            "from": self._user(user_id), "text": text,
        }
        if text.startswith("/"):
            length = len(text.split(" ", 1)[0])
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
        return await self._push({"message": message})

    async def push_callback(self, user_id: int, data: str, message_id: int, *,
                            chat_id: int | None = None) -> str:
        """Queue a button press by ``user_id`` on the bot's message ``message_id`` in the
        user's private chat (or ``chat_id``); returns the query id."""
        query_id = f"cq{next(self._cq_ids)}"
        await self._push({"callback_query": {
            "id": query_id, "from": self._user(user_id), "chat_instance": f"ci{user_id}",
            "data": data,
            "message": {"message_id": message_id, "date": int(time.time()),
                        "chat": self._chat(user_id if chat_id is None else chat_id),
                        "from": BOT_USER, "text": "prompt"},
        }})
        return query_id

    # ------------------------------------------------------------------ queries for tests

    def calls(self, method: str) -> list[Request]:
        return [r for r in self.requests if r.method == method]

    def sent_to(self, chat_id: int, method: str | None = None) -> list[Sent]:
        return [s for s in self.sent if s.chat_id == chat_id and (method is None or
                                                                   s.method == method)]

    def texts_to(self, chat_id: int) -> list[str]:
        return [s.text for s in self.sent_to(chat_id)]

    # ------------------------------------------------------------------ HTTP

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        raw = await request.read()
        parts = request.path.strip("/").split("/")
        if len(parts) != 2 or not parts[0].startswith("bot"):
            return self._error(404, "Not Found")
        token, method = parts[0][3:], parts[1]
        params, files = _parse_body(request.headers.get("Content-Type", ""), raw)
        record = Request(method, params, files, raw)
        self.requests.append(record)
        if self._down == "500":
            record.status = 500
            return self._error(500, "Internal Server Error")
        if token != self.token:
            record.status = 401
            return self._error(401, "Unauthorized")
        flood = self._flood.get(method)
        if flood and flood[0] > 0:
            flood[0] -= 1
            record.status = 429
            return self._error(429, f"Too Many Requests: retry after {flood[1]}",
                               {"retry_after": flood[1]})
        if self.max_upload_bytes is not None and any(
                len(content) > self.max_upload_bytes for _, content in files.values()):
            record.status = 413
            return self._error(413, "Request Entity Too Large")
        if params.get("chat_id") and int(params["chat_id"]) in self.blocked_chats:
            record.status = 403
            return self._error(403, "Forbidden: bot was blocked by the user")
        handler = getattr(self, "_m_" + method, None)
        if handler is None:
            record.status = 400
            return self._error(400, f"Bad Request: method {method} is not in the fake")
        result = await handler(params, files)
        if isinstance(result, web.Response):
            record.status = result.status
            return result
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    def _error(code: int, description: str, parameters: dict | None = None) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=code)

    def _message(self, chat_id: int, **extra: Any) -> dict:
        return {"message_id": next(self._message_ids), "date": int(time.time()),
                "chat": self._chat(chat_id), "from": BOT_USER, **extra}

    # ------------------------------------------------------------------ methods

    async def _m_getMe(self, p: dict, f: dict) -> Any:
        return BOT_USER

    async def _m_deleteWebhook(self, p: dict, f: dict) -> Any:
        if p.get("drop_pending_updates") in ("true", "True", "1"):
            self._updates.clear()
        return True

    async def _m_getUpdates(self, p: dict, f: dict) -> Any:
        if self.conflict:
            return self._error(409, "Conflict: terminated by other getUpdates request; make "
                                    "sure that only one bot instance is running")
        offset = int(p.get("offset") or 0)
        timeout = float(p.get("timeout") or 0)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        if not self._updates and timeout > 0 and not self._closing:
            async with self._new_update:
                try:
                    await asyncio.wait_for(self._new_update.wait(), timeout)
                except TimeoutError:
                    pass
        return [u for u in self._updates if u["update_id"] >= offset]

    async def _m_setMyCommands(self, p: dict, f: dict) -> Any:
        self.commands = json.loads(p["commands"])
        return True

    async def _m_getMyCommands(self, p: dict, f: dict) -> Any:
        return self.commands

    async def _m_deleteMyCommands(self, p: dict, f: dict) -> Any:
        self.commands = []
        return True

    async def _m_sendMessage(self, p: dict, f: dict) -> Any:
        chat_id = int(p["chat_id"])
        text = p.get("text", "")
        if not 1 <= len(text) <= 4096:
            return self._error(400, "Bad Request: message text is empty or too long")
        if "<" in text and p.get("parse_mode") == "HTML" and not _balanced_html(text):
            return self._error(400, "Bad Request: can't parse entities")
        msg = self._message(chat_id, text=text)
        markup = json.loads(p["reply_markup"]) if p.get("reply_markup") else None
        self.sent.append(Sent("sendMessage", chat_id, msg["message_id"], text, markup))
        return msg

    async def _m_sendPhoto(self, p: dict, f: dict) -> Any:
        chat_id = int(p["chat_id"])
        name, content = f.get("photo", ("", b""))
        msg = self._message(chat_id, photo=[{"file_id": "photo1", "file_unique_id": "uphoto1",
                                             "width": 1000, "height": 400,
                                             "file_size": len(content)}],
                            caption=p.get("caption", ""))
        self.sent.append(Sent("sendPhoto", chat_id, msg["message_id"], p.get("caption", ""),
                              filename=name, content=content))
        return msg

    async def _m_sendDocument(self, p: dict, f: dict) -> Any:
        chat_id = int(p["chat_id"])
        name, content = f.get("document", ("", b""))
        msg = self._message(chat_id, document={"file_id": "doc1", "file_unique_id": "udoc1",
                                               "file_name": name, "file_size": len(content)},
                            caption=p.get("caption", ""))
        self.sent.append(Sent("sendDocument", chat_id, msg["message_id"], p.get("caption", ""),
                              filename=name, content=content))
        return msg

    async def _m_editMessageText(self, p: dict, f: dict) -> Any:
        chat_id = int(p["chat_id"])
        message_id = int(p["message_id"])
        markup = json.loads(p["reply_markup"]) if p.get("reply_markup") else None
        self.sent.append(Sent("editMessageText", chat_id, message_id, p.get("text", ""), markup))
        return {"message_id": message_id, "date": int(time.time()), "chat": self._chat(chat_id),
                "from": BOT_USER, "text": p.get("text", "")}

    async def _m_answerCallbackQuery(self, p: dict, f: dict) -> Any:
        self.callback_answers.append(dict(p))
        return True

    async def _m_close(self, p: dict, f: dict) -> Any:
        return True

    async def _m_logOut(self, p: dict, f: dict) -> Any:
        return True


def _parse_body(content_type: str, raw: bytes) -> tuple[dict[str, str],
                                                        dict[str, tuple[str, bytes]]]:
    if content_type.startswith("multipart/form-data"):
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
        params: dict[str, str] = {}
        files: dict[str, tuple[str, bytes]] = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            filename = part.get_filename()
            if filename is not None:
                files[str(name)] = (filename, payload)
            else:
                params[str(name)] = payload.decode("utf-8")
        # PTB names the file part by a random attach id and points to it from the parameter
        for key, value in list(params.items()):
            if value.startswith("attach://") and value[9:] in files:
                files[key] = files[value[9:]]
        return params, files
    if raw:
        return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True)), {}
    return {}, {}


_HTML_TOKEN = re.compile(r"<(/?)([a-zA-Z-]*)[^<>]*>|<|&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);|&")
_ALLOWED_TAGS = {"b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "a", "code", "pre",
                 "blockquote", "span", "tg-spoiler"}


def _balanced_html(text: str) -> bool:
    """A rough version of Telegram's HTML check: known tags, properly nested, entities only
    for ``&lt; &gt; &amp; &quot;`` and numeric ones, no bare ``<``."""
    stack: list[str] = []
    for m in _HTML_TOKEN.finditer(text):
        token = m.group(0)
        if token == "<" or token == "&":
            return False
        if token.startswith("&"):
            if m.group(3) and not m.group(3).startswith("#") and m.group(3) not in (
                    "lt", "gt", "amp", "quot"):
                return False
            continue
        name = m.group(2).lower()
        if name not in _ALLOWED_TAGS:
            return False
        if m.group(1):
            if not stack or stack.pop() != name:
                return False
        else:
            stack.append(name)
    return not stack
