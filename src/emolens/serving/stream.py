"""`/v1/stream`: a WebSocket for a live stream of frames from the browser.

Protocol. The server greets with `{"type": "hello", "model": {...}, "labels": [...], "limits": {...}}`.
The client then sends each frame as one binary message (a JPEG or PNG file) and the server
answers each, in order, with `{"type": "result", "seq": n, "faces": [...], "tags": [...],
"image": {...}, "main": {"face_id": id, "held": false, "followed": false}, "timings": {...}}`, or
`{"type": "error", "seq": n, "status": 422, "error": ..., "detail": ...}` for a frame it could not use; the connection stays open. Clients send the next frame once the
previous answer arrives, so a slow server lowers the frame rate instead of piling up frames.

Each connection's frames are followed as `emolens webcam` follows a camera
(`emolens.serving.jobs.LiveSession`): faces carry track ids (`face_id`) and scores smoothed over
their track, and `main` names the face whose bars to show (one person's, until another face grows
`PIPELINE.main_face_switch` times as large; `held` while that face is missed for a moment). The
one text message, `{"type": "follow", "face_id": 3}` (or null), keeps the bars on the face a
viewer chose (`followed` in `main`); it is echoed, and any other text is a 415 error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from emolens.errors import ModelError
from emolens.serving.errors import describe
from emolens.serving.limits import too_large_message
from emolens.serving.uploads import Upload

router = APIRouter()
log = logging.getLogger("emolens.serving")

# RFC 6455 close codes: 1008 policy violation (the client broke the protocol's rules),
# 1013 try again later (the server is full).
POLICY_VIOLATION, TRY_AGAIN_LATER = 1008, 1013


_COMMAND_CHARS = 200  # a text message longer than this is no command


def _command(text: str | None, live: Any, seq: int) -> dict[str, Any]:
    """The answer to a text message: `{"type": "follow", "face_id": 3}` (or null) keeps the bars on
    that face (`LayoutMemory.follow`) and is echoed back; anything else is a 415 error."""
    try:
        command = json.loads(text) if text is not None and len(text) <= _COMMAND_CHARS else None
    except ValueError:
        command = None
    face_id = command.get("face_id", False) if isinstance(command, dict) and command.get("type") == "follow" else False
    if face_id is None or (isinstance(face_id, int) and not isinstance(face_id, bool)):
        live.memory.follow(face_id)
        return {"type": "follow", "seq": seq, "face_id": face_id}
    from emolens.serving.uploads import UnsupportedMediaType

    status, body, _ = describe(UnsupportedMediaType(
        'send each frame as a binary WebSocket message holding a JPEG or PNG file; the one text message is {"type": "follow", "face_id": <id or null>}'
    ))
    return {"type": "error", "seq": seq, "status": status, **body}


class NotReading(Exception):
    """The client has not taken a reply off the socket for `read_timeout` seconds."""


async def _send(ws: WebSocket, message: dict[str, Any], timeout: float) -> None:
    # allow_nan=False: a NaN would be invalid JSON for the browser (jobs.check_finite stops it first).
    text = json.dumps(message, allow_nan=False, separators=(",", ":"))
    try:
        await asyncio.wait_for(ws.send_text(text), timeout)
    except TimeoutError:
        raise NotReading from None


@router.websocket("/v1/stream")
async def stream(ws: WebSocket) -> None:
    state = ws.app.state
    info = state.model_info
    limits = state.limits
    if state.streams >= limits.max_streams:
        log.info("/v1/stream: refused a connection, %d streams already open (max_streams)", state.streams)
        await ws.accept()
        await ws.close(TRY_AGAIN_LATER, f"server busy: {state.streams} streams open, at most {limits.max_streams}")
        return
    state.streams += 1
    try:
        await ws.accept()
        await _serve(ws, state, info, limits)
    except NotReading:
        # Only one frame is ever in flight per connection (uvicorn stops reading the socket
        # until the handler asks for the next message), so a client that sends without
        # reading stalls here, holding a bounded buffer, until this deadline drops it.
        log.info("/v1/stream: client stopped reading replies for %g s; closing (%d)", limits.read_timeout, POLICY_VIOLATION)
        with contextlib.suppress(Exception):  # the socket is stuck or gone; uvicorn drops it when the handler returns
            await asyncio.wait_for(ws.close(POLICY_VIOLATION, "replies not read"), 1.0)
    except WebSocketDisconnect:
        return
    finally:
        state.streams -= 1


async def _serve(ws: WebSocket, state: Any, info: dict[str, Any], limits: Any) -> None:
    from emolens.serving.jobs import LiveSession

    live = LiveSession(state.runner.recognizer)  # this connection's tracks and smoothing
    try:
        await _answer(ws, state, info, limits, live)
    finally:
        live.close()


async def _answer(ws: WebSocket, state: Any, info: dict[str, Any], limits: Any, live: Any) -> None:
    await _send(ws, {
        "type": "hello",
        "model": {"name": str(info.get("name", "")), "version": str(info.get("version", ""))},
        "labels": list(info.get("labels", [])),
        "limits": limits.to_dict(),
    }, limits.read_timeout)
    seq = 0
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        seq += 1
        t0 = time.perf_counter()
        data = message.get("bytes")
        try:
            if data is None:
                await _send(ws, _command(message.get("text"), live, seq), limits.read_timeout)
                continue
            if len(data) > limits.max_upload_bytes:
                from fastapi import HTTPException

                raise HTTPException(413, too_large_message(len(data), limits.max_upload_bytes))
            out, wait_s = await state.pool.run(state.runner.predict_frame, Upload(data, f"frame {seq}"), live)
        except Exception as exc:
            status, body, headers = describe(exc)
            if status == 500 and not isinstance(exc, ModelError):
                raise  # a bug: uvicorn logs it and closes the connection
            reply: dict[str, Any] = {"type": "error", "seq": seq, "status": status, **body}
            if "Retry-After" in headers:
                reply["retry_after"] = int(headers["Retry-After"])
            del data, message
            await _send(ws, reply, limits.read_timeout)
            continue
        del data, message  # the frame's bytes are not kept while waiting for the next one
        out["timings"] = {"queue_ms": round(wait_s * 1000, 3), **out["timings"], "total_ms": round((time.perf_counter() - t0) * 1000, 3)}
        await _send(ws, {"type": "result", "seq": seq, **out}, limits.read_timeout)
