"""`/v1/stream`: a WebSocket for a live stream of frames from the browser.

Protocol. The server greets with `{"type": "hello", "model": {...}, "labels": [...], "limits": {...}}`.
The client then sends each frame as one binary message (a JPEG or PNG file) and the server
answers each, in order, with `{"type": "result", "seq": n, "faces": [...], "image": {...},
"timings": {...}}`, or `{"type": "error", "seq": n, "status": 422, "error": ..., "detail": ...}`
for a frame it could not use; the connection stays open. Clients send the next frame once the
previous answer arrives, so a slow server lowers the frame rate instead of piling up frames.
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from emolens.serving.errors import describe
from emolens.serving.limits import too_large_message
from emolens.serving.uploads import Upload

router = APIRouter()


@router.websocket("/v1/stream")
async def stream(ws: WebSocket) -> None:
    state = ws.app.state
    info = state.model_info
    await ws.accept()
    await ws.send_json({
        "type": "hello",
        "model": {"name": str(info.get("name", "")), "version": str(info.get("version", ""))},
        "labels": list(info.get("labels", [])),
        "limits": state.limits.to_dict(),
    })
    seq = 0
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            seq += 1
            t0 = time.perf_counter()
            data = message.get("bytes")
            try:
                if data is None:
                    from emolens.serving.uploads import UnsupportedMediaType

                    raise UnsupportedMediaType("send each frame as a binary WebSocket message holding a JPEG or PNG file, not text")
                if len(data) > state.limits.max_upload_bytes:
                    from fastapi import HTTPException

                    raise HTTPException(413, too_large_message(len(data), state.limits.max_upload_bytes))
                out, wait_s = await state.pool.run(state.runner.predict_image, Upload(data, f"frame {seq}"), state.limits.max_pixels)
            except Exception as exc:
                status, body, headers = describe(exc)
                if status == 500:
                    raise
                reply: dict[str, Any] = {"type": "error", "seq": seq, "status": status, **body}
                if "Retry-After" in headers:
                    reply["retry_after"] = int(headers["Retry-After"])
                await ws.send_json(reply)
                continue
            out["timings"] = {"queue_ms": round(wait_s * 1000, 3), **out["timings"], "total_ms": round((time.perf_counter() - t0) * 1000, 3)}
            await ws.send_json({"type": "result", "seq": seq, **out})
    except WebSocketDisconnect:
        return
