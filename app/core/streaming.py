"""A streamed response that always closes what it streams.

Starlette stops iterating a response's body when the client disconnects (it cancels the
task) or when sending fails, but leaves the iterator for the garbage collector to close,
some time later. Answers hold a generator thread or a remote request and one of the user's
answer slots until their stream is closed, so this closes it as the response ends,
shielded from the cancellation that ended it."""

import anyio
from fastapi.responses import StreamingResponse


class ClosingStreamingResponse(StreamingResponse):
    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self.body_iterator.aclose()
