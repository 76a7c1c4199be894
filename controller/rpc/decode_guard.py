"""A request that is not the method's protobuf gets ``INVALID_ARGUMENT`` saying so, on every
service: grpc itself would answer ``UNKNOWN`` ("Unexpected error") and log a traceback."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import grpc
import structlog

from muster.errors import MusterError

__all__ = ["BadRequest", "DecodeGuard", "Undecodable"]

log = structlog.get_logger(__name__)


class Undecodable:
    """What the request deserializer hands on instead of raising: the bytes were not the
    method's protobuf. The guarded method answers ``INVALID_ARGUMENT`` with ``error``."""

    __slots__ = ("error",)

    def __init__(self, error: str) -> None:
        self.error = error


class BadRequest(MusterError):
    """A request on a stream was not the method's protobuf; the stream ends INVALID_ARGUMENT."""


def _decode_refusal(method: str, error: str) -> str:
    return (
        f"请求无法解析，不是 {method} 的 protobuf 消息 (request is not a valid protobuf: {error})"
    )


def _safe_deserializer(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any]:
    def decode(data: bytes) -> Any:
        if deserialize is None:
            return data
        try:
            return deserialize(data)
        except Exception as exc:  # DecodeError, or a UnicodeDecodeError of a string field
            return Undecodable(f"{type(exc).__name__}: {exc}")

    return decode


class DecodeGuard(grpc.aio.ServerInterceptor):
    """Turns a request that does not decode into ``INVALID_ARGUMENT`` saying so; grpc itself
    would answer ``UNKNOWN`` ("Unexpected error") and log a traceback."""

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler: Any = await continuation(handler_call_details)
        if handler is None:
            return None
        method = str(handler_call_details.method)
        decode = _safe_deserializer(handler.request_deserializer)
        serialize = handler.response_serializer
        if handler.unary_unary is not None:
            unary = handler.unary_unary

            async def unary_unary(request: Any, context: Any) -> Any:
                if isinstance(request, Undecodable):
                    await _refuse_undecodable(context, method, request.error)
                return await unary(request, context)

            return grpc.unary_unary_rpc_method_handler(
                cast(Any, unary_unary), request_deserializer=decode, response_serializer=serialize
            )
        if handler.unary_stream is not None:
            streaming = handler.unary_stream

            async def unary_stream(request: Any, context: Any) -> AsyncIterator[Any]:
                if isinstance(request, Undecodable):
                    await _refuse_undecodable(context, method, request.error)
                async for response in streaming(request, context):
                    yield response

            return grpc.unary_stream_rpc_method_handler(
                cast(Any, unary_stream), request_deserializer=decode, response_serializer=serialize
            )
        if handler.stream_stream is not None:
            bidi: Any = handler.stream_stream

            async def checked(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
                async for request in requests:
                    if isinstance(request, Undecodable):
                        raise BadRequest(_decode_refusal(method, request.error))
                    yield request

            async def stream_stream(requests: AsyncIterator[Any], context: Any) -> Any:
                async for response in bidi(checked(requests), context):
                    yield response

            return grpc.stream_stream_rpc_method_handler(
                cast(Any, stream_stream), request_deserializer=decode, response_serializer=serialize
            )
        return cast(grpc.RpcMethodHandler[Any, Any], handler)  # stream-unary: none of ours


async def _refuse_undecodable(
    context: grpc.aio.ServicerContext[object, object], method: str, error: str
) -> None:
    log.warning("undecodable request refused", method=method, error=error)
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _decode_refusal(method, error))
