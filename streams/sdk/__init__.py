"""The client SDK: publish predictions and labels, subscribe to outputs."""

from streams.sdk.client import DriftstreamClient, SyncDriftstreamClient, encode_batches, subscribe

__all__ = ["DriftstreamClient", "SyncDriftstreamClient", "encode_batches", "subscribe"]
